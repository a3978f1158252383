/**
 * What the SMTP sink asks the identity provider: is this access token live, and whose is it? Opaque user tokens
 * are looked up (so a revoked grant shows at once); app-only tokens are JWTs checked against the signing key.
 */
import { jwtVerify, type CryptoKey } from 'jose';
import type Provider from 'oidc-provider';
import type { Users } from './directory';
import { SIGNING_ALG } from './providerConfiguration';
import type { VerifiedAccessToken } from './types';

export function accessTokenVerifier(
  provider: Provider,
  users: Users,
  issuer: string,
  publicKey: CryptoKey,
): (token: string) => Promise<VerifiedAccessToken | undefined> {
  async function verifyAccessToken(token: string): Promise<VerifiedAccessToken | undefined> {
    if (token.split('.').length === 3) return verifyJwtAccessToken(token);
    const stored = (await provider.AccessToken.find(token)) ?? (await provider.ClientCredentials.find(token));
    if (!stored || stored.isExpired) return undefined;
    if (stored.grantId && !(await provider.Grant.find(stored.grantId))) return undefined;
    const roles = stored.extra?.roles;
    return {
      sub: stored.accountId ?? stored.clientId,
      email: stored.accountId ? users.byId(stored.accountId)?.email : undefined,
      clientId: stored.clientId,
      scope: stored.scope ?? '',
      exp: stored.exp,
      aud: stored.aud,
      roles: isStringArray(roles) ? roles : undefined,
    };
  }

  async function verifyJwtAccessToken(token: string): Promise<VerifiedAccessToken | undefined> {
    try {
      const { payload } = await jwtVerify(token, publicKey, { issuer, typ: 'at+jwt', algorithms: [SIGNING_ALG] });
      const { sub, client_id: clientId, scope, exp, aud, roles, scp } = payload;
      if (typeof sub !== 'string' || typeof clientId !== 'string' || typeof exp !== 'number') return undefined;
      const email = sub !== clientId ? users.byId(sub)?.email : undefined;
      return {
        sub,
        ...(email ? { email } : {}),
        ...(typeof scp === 'string' ? { scp } : {}),
        clientId,
        scope: typeof scope === 'string' ? scope : '',
        exp,
        aud,
        roles: isStringArray(roles) ? roles : undefined,
      };
    } catch {
      return undefined;
    }
  }

  return verifyAccessToken;
}

function isStringArray(value: unknown): value is string[] {
  return Array.isArray(value) && value.every((item) => typeof item === 'string');
}
