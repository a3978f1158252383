/**
 * A real OpenID Connect authorization server (oidc-provider) standing in for Microsoft
 * identity platform and Google in tests and in the local dev stack.
 *
 * Behaviour that mirrors the real providers:
 * - authorization code flow with PKCE (S256 only, always required), `state`, `nonce`, and
 *   `iss` on every authorization response (RFC 9207);
 * - a refresh token when the request carries the `offline_access` scope (Microsoft style) or
 *   `access_type=offline` (Google style), rotated on every use; replaying a rotated refresh
 *   token fails with `invalid_grant` and revokes the whole grant (`refreshTokenRotation` also
 *   offers Microsoft's reusable rotation and Google's unchanging token);
 * - URL-shaped scopes (`https://outlook.office.com/SMTP.Send`, `https://mail.google.com/`)
 *   are accepted for any host: the URL's origin becomes the token's audience;
 * - client_credentials: a JWT access token (`typ: at+jwt`, signed with the id_token key)
 *   whose `aud` is the origin of the requested scope (`https://outlook.office365.com/.default`)
 *   and whose `roles` are `appRolesByAudience[aud]`, else `appRoles`;
 * - Microsoft Graph: a user's token for `https://graph.microsoft.com` is a JWT with `scp` (`Mail.Send`);
 *   a grant over several resources gives the code's token for the first, and a refresh gets a token for
 *   the resource its `scope` names (one refresh token, one token request per audience);
 * - users given a `tenantId` get Microsoft's `tid` and `oid` in their id_token.
 *
 * Endpoints: discovery at `/.well-known/openid-configuration`; authorization `/auth`,
 * token `/token`, revocation `/token/revocation`, introspection `/token/introspection`,
 * JWKS `/jwks`, userinfo `/me`. Sign-in and consent pages live under `/interaction/<uid>`.
 * Storage is oidc-provider's in-memory adapter, so everything is lost on `stop()`.
 *
 * This file wires the parts: providerConfiguration.ts (how oidc-provider is set up to behave as above),
 * interactions.ts (the sign-in and consent pages), tokenEndpoint.ts (counting and scripting the token endpoint
 * for tests), accessTokens.ts (verifying tokens for the SMTP sink), directory.ts (users and resource servers).
 */
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { accessTokenVerifier } from './accessTokens';
import { ResourceRegistry, Users } from './directory';
import { handleInteraction, page, sendHtml } from './interactions';
import { createProvider, SIGNING_ALG } from './providerConfiguration';
import type { Middleware, Provider, RefreshToken } from 'oidc-provider';
import { TokenEndpointScript } from './tokenEndpoint';
import type { IdentityProvider, IdentityProviderOptions } from './types';

export type * from './types';

export async function startIdentityProvider(options: IdentityProviderOptions): Promise<IdentityProvider> {
  const host = options.host ?? '127.0.0.1';
  const users = new Users(options.users);
  const grantsByAccount = new Map<string, Set<string>>();
  const tokenEndpoint = new TokenEndpointScript();

  const { privateKey, publicKey } = await generateKeyPair(SIGNING_ALG, { extractable: true });
  const kid = randomBytes(8).toString('hex');
  const signingJwk = { ...(await exportJWK(privateKey)), kid, alg: SIGNING_ALG, use: 'sig' };

  // The issuer embeds the port, so the socket is bound before the provider exists.
  let handle: (req: IncomingMessage, res: ServerResponse) => void = (_req, res) => {
    res.writeHead(503).end();
  };
  const server = createServer((req, res) => handle(req, res));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  const issuer = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;

  const provider = createProvider({
    issuer,
    clients: options.clients,
    users,
    resources: new ResourceRegistry(),
    signingJwk,
    accessTokenTtlSeconds: options.accessTokenTtlSeconds ?? 3600,
    refreshTokenTtlSeconds: options.refreshTokenTtlSeconds ?? 90 * 24 * 60 * 60,
    rotateRefreshTokens: options.refreshTokenRotation
      ? options.refreshTokenRotation === 'revoking'
      : (options.rotateRefreshTokens ?? true),
    appRoles: options.appRoles ?? [],
    appRolesByAudience: options.appRolesByAudience ?? {},
    cookieKey: randomBytes(32).toString('base64url'),
  });

  provider.on('grant.saved', (grant) => {
    const grants = grantsByAccount.get(grant.accountId) ?? new Set<string>();
    grants.add(grant.jti);
    grantsByAccount.set(grant.accountId, grants);
  });
  provider.on('authorization.success', () => {
    tokenEndpoint.counters.authorizations += 1;
  });
  provider.on('server_error', (_ctx, error) => {
    console.error('identity provider error:', error);
  });

  provider.use(tokenEndpoint.middleware);
  if (options.refreshTokenRotation === 'reusable') provider.use(issueReusableRefreshTokens(provider));

  const providerCallback = provider.callback();
  handle = (req, res) => {
    if (req.url?.startsWith('/interaction/')) {
      handleInteraction(provider, users, req, res).catch((error: unknown) => {
        console.error('identity provider interaction error:', error);
        if (!res.headersSent) sendHtml(res, 500, page('Error', '<p>Internal error.</p>'));
      });
      return;
    }
    providerCallback(req, res);
  };

  return {
    issuer,
    counters: tokenEndpoint.counters,
    clientAssertionHeaders: tokenEndpoint.clientAssertionHeaders,
    verifyAccessToken: accessTokenVerifier(provider, users, issuer, publicKey),
    async revokeGrantsOf(userId) {
      const grantIds = grantsByAccount.get(userId) ?? new Set<string>();
      grantsByAccount.delete(userId);
      for (const grantId of grantIds) {
        await Promise.all([
          provider.AccessToken.revokeByGrantId(grantId),
          provider.RefreshToken.revokeByGrantId(grantId),
          provider.AuthorizationCode.revokeByGrantId(grantId),
        ]);
        await (await provider.Grant.find(grantId))?.destroy();
      }
    },
    setTokenEndpoint(mode) {
      tokenEndpoint.mode = mode;
    },
    onTokenResponse(hook) {
      tokenEndpoint.hook = hook;
    },
    async signJwt(claims) {
      const now = Math.floor(Date.now() / 1000);
      return new SignJWT({ iss: issuer, iat: now, exp: now + 300, ...claims })
        .setProtectedHeader({ alg: SIGNING_ALG, kid, typ: 'JWT' })
        .sign(privateKey);
    },
    async grantRefreshToken({ userId, clientId, scope }) {
      const client = await provider.Client.find(clientId);
      if (!client) throw new Error(`grantRefreshToken: no client ${clientId}`);
      const grant = new provider.Grant({ accountId: userId, clientId });
      grant.addOIDCScope(scope);
      const grantId = await grant.save();
      const now = Math.floor(Date.now() / 1000);
      const token = new provider.RefreshToken({
        accountId: userId,
        client,
        grantId,
        gty: 'authorization_code',
        scope,
        iiat: now,
        authTime: now,
      });
      return token.save();
    },
    async stop() {
      await new Promise<void>((resolve, reject) => {
        server.close((error) => (error ? reject(error) : resolve()));
        server.closeAllConnections();
      });
    },
  };
}

/**
 * Microsoft's rotation: each refresh answers with a new refresh token of the same grant, and the one just used
 * keeps working (oidc-provider runs without rotation here, so nothing is consumed; this adds the new token).
 */
const issueReusableRefreshTokens =
  (provider: Provider): Middleware =>
  async (ctx, next) => {
    await next();
    if (ctx.path !== '/token' || ctx.status !== 200 || ctx.oidc.params?.grant_type !== 'refresh_token') return;
    const used = ctx.oidc.entities.RefreshToken as (RefreshToken & Record<string, unknown>) | undefined;
    const body = ctx.body as Record<string, unknown> | undefined;
    if (!used || !body) return;
    const copied = ['accountId', 'acr', 'amr', 'authTime', 'claims', 'expiresWithSession', 'iiat', 'grantId', 'gty']
      .concat(['nonce', 'resource', 'scope', 'sessionUid', 'sid', 'rar'])
      .filter((field) => used[field] !== undefined);
    const issued = new provider.RefreshToken({
      ...Object.fromEntries(copied.map((field) => [field, used[field]])),
      client: ctx.oidc.entities.Client,
      rotations: (typeof used.rotations === 'number' ? used.rotations : 0) + 1,
    });
    ctx.body = { ...body, refresh_token: await issued.save() };
  };
