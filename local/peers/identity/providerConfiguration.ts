/**
 * The oidc-provider configuration that makes it behave like Microsoft identity platform and Google (see
 * identityProvider.ts for the list): PKCE always, rotating refresh tokens, offline access the Microsoft and the
 * Google way, URL-shaped scopes as resource indicators, app-only JWT access tokens.
 */
import Provider, { interactionPolicy, type ClientMetadata, type ResourceServerInfo } from 'oidc-provider';
import MemoryAdapter from 'oidc-provider/lib/adapters/memory_adapter.js';
import type { ResourceRegistry, Users } from './directory';
import { escapeHtml, page } from './interactions';
import { MemoryStore } from './memoryStore';
import type { IdentityProviderClient } from './types';

export const SIGNING_ALG = 'RS256';
/** Microsoft Graph's user tokens are JWTs with an `scp` claim, as Entra issues them (Exchange's stay opaque here). */
export const GRAPH_RESOURCE = 'https://graph.microsoft.com';
const DAY = 24 * 60 * 60;

export interface ProviderSettings {
  issuer: string;
  clients: IdentityProviderClient[];
  users: Users;
  resources: ResourceRegistry;
  signingJwk: object;
  accessTokenTtlSeconds: number;
  refreshTokenTtlSeconds: number;
  rotateRefreshTokens: boolean;
  appRoles: string[];
  appRolesByAudience: Record<string, string[]>;
  cookieKey: string;
}

export function createProvider(settings: ProviderSettings): Provider {
  const { issuer, users, resources, signingJwk, appRoles, appRolesByAudience, cookieKey } = settings;
  const accessTokenTtl = settings.accessTokenTtlSeconds;
  const refreshTokenTtl = settings.refreshTokenTtlSeconds;
  const policy = interactionPolicy.base();
  // Microsoft and Google accept prompt=select_account; it shows the sign-in page again.
  policy.add(new interactionPolicy.Prompt({ name: 'select_account', requestable: true }), 0);

  const store = new MemoryStore();
  return new Provider(issuer, {
    adapter: (model) => new MemoryAdapter(model, store),
    clients: settings.clients.map(toClientMetadata),
    jwks: { keys: [signingJwk] },
    cookies: { keys: [cookieKey] },
    scopes: ['openid', 'offline_access', 'email', 'profile'],
    claims: {
      openid: ['sub', 'tid', 'oid'],
      email: ['email', 'email_verified'],
      profile: ['name', 'preferred_username'],
    },
    // Both providers put the profile claims in the id_token, not only at userinfo.
    conformIdTokenClaims: false,
    clientBasedCORS: () => false,
    async findAccount(_ctx, sub) {
      const user = users.byId(sub);
      if (!user) return undefined;
      return {
        accountId: user.id,
        async claims() {
          return {
            sub: user.id,
            email: user.email,
            email_verified: true,
            name: user.name ?? user.email,
            preferred_username: user.email,
            ...(user.tenantId ? { tid: user.tenantId, oid: user.objectId ?? user.id } : {}),
          };
        },
      };
    },
    extraParams: {
      // oidc-provider drops offline_access from the request unless prompt=consent (OpenID
      // Connect Core 11). Microsoft does not require that and Google signals the same wish
      // with access_type=offline, so offline_access is put back here: extra parameter
      // validators run after the scope checks and before the request is stored.
      access_type(ctx, value, client) {
        const params = ctx.oidc.params;
        if (ctx.oidc.route !== 'authorization' || !params || !client.grantTypeAllowed('refresh_token')) return;
        const raw = ctx.method === 'POST' ? ctx.oidc.body?.scope : ctx.query.scope;
        const requested = typeof raw === 'string' ? raw.split(' ') : [];
        if (value !== 'offline' && !requested.includes('offline_access')) return;
        const scopes = new Set(params.scope?.split(' ') ?? []);
        scopes.add('offline_access');
        params.scope = [...scopes].join(' ');
      },
    },
    async issueRefreshToken(_ctx, client, code) {
      return client.grantTypeAllowed('refresh_token') && code.scopes.has('offline_access');
    },
    rotateRefreshToken: settings.rotateRefreshTokens,
    async extraTokenClaims(_ctx, token) {
      const audience = token.resourceServer?.audience ?? [token.aud].flat()[0];
      if (token.kind === 'ClientCredentials') {
        const roles = (audience !== undefined ? appRolesByAudience[audience] : undefined) ?? appRoles;
        return roles.length > 0 ? { roles } : undefined;
      }
      if (audience === GRAPH_RESOURCE) {
        const prefix = `${GRAPH_RESOURCE}/`;
        const scp = [...token.scopes].filter((s) => s.startsWith(prefix)).map((s) => s.slice(prefix.length));
        return { scp: scp.join(' ') };
      }
      return undefined;
    },
    pkce: { required: () => true },
    interactions: { policy },
    async renderError(ctx, out) {
      ctx.body = page(
        'Error',
        Object.entries(out)
          .map(([key, value]) => `<p><strong>${escapeHtml(key)}</strong>: ${escapeHtml(String(value))}</p>`)
          .join(''),
      );
    },
    ttl: {
      AccessToken: accessTokenTtl,
      ClientCredentials: accessTokenTtl,
      AuthorizationCode: 60,
      IdToken: 3600,
      RefreshToken: refreshTokenTtl,
      Grant: Math.max(refreshTokenTtl, 365 * DAY),
      Session: DAY,
      Interaction: 3600,
    },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      revocation: { enabled: true, allowedPolicy: async (_ctx, client, token) => token.clientId === client.clientId },
      introspection: { enabled: true, allowedPolicy: async (_ctx, client, token) => token.clientId === client.clientId },
      pushedAuthorizationRequests: { enabled: false },
      resourceIndicators: {
        enabled: true,
        async defaultResource(ctx, _client, oneOf) {
          // A refresh of a grant for several resources: the requested scope picks one, as with Microsoft (a
          // refresh with a Graph scope gives a Graph token); without one, the first resource.
          if (oneOf) return resources.note(ctx.oidc.params?.scope).find((r) => oneOf.includes(r)) ?? oneOf[0];
          const found = resources.note(ctx.oidc.params?.scope);
          return found.length > 1 ? found : found[0];
        },
        // Tokens are for the resource (aud) the scopes named, as Microsoft issues them.
        useGrantedResource: async () => true,
        async getResourceServerInfo(ctx, resource): Promise<ResourceServerInfo> {
          resources.note(ctx.oidc.params?.scope);
          const appOnly = ctx.oidc.params?.grant_type === 'client_credentials';
          return {
            scope: resources.scopesOf(resource).join(' '),
            audience: resource,
            // User tokens stay opaque so that revocation is observable by verifyAccessToken; Graph's are JWTs.
            accessTokenFormat: appOnly || resource === GRAPH_RESOURCE ? 'jwt' : 'opaque',
            ...(appOnly || resource === GRAPH_RESOURCE ? { jwt: { sign: { alg: SIGNING_ALG } } } : {}),
          };
        },
      },
    },
  });
}

function toClientMetadata(client: IdentityProviderClient): ClientMetadata {
  const grantTypes = client.grantTypes ?? ['authorization_code', 'refresh_token'];
  const authMethod =
    client.authMethod ?? (client.clientSecret ? 'client_secret_basic' : client.jwks ? 'private_key_jwt' : 'none');
  return {
    client_id: client.clientId,
    ...(authMethod === 'none' || client.clientSecret === undefined ? {} : { client_secret: client.clientSecret }),
    redirect_uris: client.redirectUris ?? [],
    grant_types: grantTypes,
    response_types: grantTypes.includes('authorization_code') ? ['code'] : [],
    token_endpoint_auth_method: authMethod,
    ...(client.jwks ? { jwks: client.jwks } : {}),
    ...(client.scopes ? { scope: client.scopes } : {}),
  };
}
