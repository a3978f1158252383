/**
 * A real OpenID Connect authorization server (oidc-provider) standing in for Microsoft
 * identity platform and Google in tests and in the local dev stack.
 *
 * Behaviour that mirrors the real providers:
 * - authorization code flow with PKCE (S256 only, always required), `state`, `nonce`, and
 *   `iss` on every authorization response (RFC 9207);
 * - a refresh token when the request carries the `offline_access` scope (Microsoft style) or
 *   `access_type=offline` (Google style), rotated on every use; replaying a rotated refresh
 *   token fails with `invalid_grant` and revokes the whole grant;
 * - URL-shaped scopes (`https://outlook.office.com/SMTP.Send`, `https://mail.google.com/`)
 *   are accepted for any host: the URL's origin becomes the token's audience;
 * - client_credentials: a JWT access token (`typ: at+jwt`, signed with the id_token key)
 *   whose `aud` is the origin of the requested scope (`https://outlook.office365.com/.default`)
 *   and whose `roles` are `appRoles`.
 *
 * Endpoints: discovery at `/.well-known/openid-configuration`; authorization `/auth`,
 * token `/token`, revocation `/token/revocation`, introspection `/token/introspection`,
 * JWKS `/jwks`, userinfo `/me`. Sign-in and consent pages live under `/interaction/<uid>`.
 * Storage is oidc-provider's in-memory adapter, so everything is lost on `stop()`.
 */
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, jwtVerify, SignJWT, type JSONWebKeySet } from 'jose';
import Provider, {
  errors,
  interactionPolicy,
  type ClientMetadata,
  type InteractionDetails,
  type ResourceServerInfo,
} from 'oidc-provider';

export type ClientAuthMethod = 'client_secret_basic' | 'client_secret_post' | 'private_key_jwt' | 'none';
export type GrantType = 'authorization_code' | 'refresh_token' | 'client_credentials';

export interface IdentityProviderClient {
  clientId: string;
  clientSecret?: string;
  /** Required for the authorization_code grant. */
  redirectUris?: string[];
  /** Default: client_secret_basic with a secret, private_key_jwt with jwks, otherwise none. */
  authMethod?: ClientAuthMethod;
  /** Public keys, for private_key_jwt. */
  jwks?: JSONWebKeySet;
  /** Default: ['authorization_code', 'refresh_token']. */
  grantTypes?: GrantType[];
  /** Space-separated allow-list of the OpenID scopes (openid, email, ...) this client may ask for. */
  scopes?: string;
}

export interface IdentityProviderUser {
  /** Becomes the `sub` claim. */
  id: string;
  /** Also accepted as the login name (case-insensitive), as is `id`. */
  email: string;
  name?: string;
  password: string;
}

export interface IdentityProviderOptions {
  /** Default 127.0.0.1. */
  host?: string;
  /** Default 0: a free port. */
  port?: number;
  clients: IdentityProviderClient[];
  users: IdentityProviderUser[];
  /** Lifetime of access tokens, user and app-only. Default 3600. */
  accessTokenTtlSeconds?: number;
  /** Lifetime of each refresh token; a rotated one gets a fresh lifetime. Default 90 days. */
  refreshTokenTtlSeconds?: number;
  /** Default true: every refresh returns a new refresh token and consumes the old one. */
  rotateRefreshTokens?: boolean;
  /** `roles` claim of client_credentials access tokens, e.g. ['SMTP.SendAsApp']. */
  appRoles?: string[];
}

export interface VerifiedAccessToken {
  /** The user id; for app-only tokens, the client id. */
  sub: string;
  email?: string;
  clientId: string;
  scope: string;
  /** Seconds since the epoch. */
  exp: number;
  aud?: string | string[];
  roles?: string[];
}

/**
 * 'down' answers 503 temporarily_unavailable, 'reset' closes the connection without an
 * answer, an object answers with that status and JSON body. Every mode but 'normal' holds
 * until changed.
 */
export type TokenEndpointMode = 'normal' | 'down' | 'reset' | { status: number; body: object };

export type TokenResponseHook = (body: Record<string, unknown>) => Record<string, unknown> | Promise<Record<string, unknown>>;

export interface IdentityProviderCounters {
  /** Every POST to the token endpoint, whatever its outcome. */
  tokenRequests: number;
  /** The same, keyed by grant_type ('unknown' when absent). */
  tokenRequestsByGrant: Record<string, number>;
  /** Authorization requests that ended with a code sent back to the client. */
  authorizations: number;
}

export interface IdentityProvider {
  /** e.g. http://127.0.0.1:54321 (no trailing slash). */
  readonly issuer: string;
  /** Active, unexpired and not revoked (opaque user tokens and app-only JWTs alike). */
  verifyAccessToken(token: string): Promise<VerifiedAccessToken | undefined>;
  /** As if the user withdrew consent: their grants, refresh and access tokens are gone. */
  revokeGrantsOf(userId: string): Promise<void>;
  /** Live counters; compare before/after values rather than resetting. */
  readonly counters: IdentityProviderCounters;
  setTokenEndpoint(mode: TokenEndpointMode): void;
  /** Rewrites every successful token response until called again without a hook. */
  onTokenResponse(hook?: TokenResponseHook): void;
  /** Signs with the id_token key; iss, iat and exp (+5 min) are filled in unless given. */
  signJwt(claims: Record<string, unknown>): Promise<string>;
  stop(): Promise<void>;
}

const DAY = 24 * 60 * 60;
const SIGNING_ALG = 'RS256';

export async function startIdentityProvider(options: IdentityProviderOptions): Promise<IdentityProvider> {
  const host = options.host ?? '127.0.0.1';
  const accessTokenTtl = options.accessTokenTtlSeconds ?? 3600;
  const refreshTokenTtl = options.refreshTokenTtlSeconds ?? 90 * DAY;
  const appRoles = options.appRoles ?? [];
  const users = new Users(options.users);
  const resources = new ResourceRegistry();
  const grantsByAccount = new Map<string, Set<string>>();
  const counters: IdentityProviderCounters = { tokenRequests: 0, tokenRequestsByGrant: {}, authorizations: 0 };
  let tokenMode: TokenEndpointMode = 'normal';
  let tokenHook: TokenResponseHook | undefined;

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

  const policy = interactionPolicy.base();
  // Microsoft and Google accept prompt=select_account; it shows the sign-in page again.
  policy.add(new interactionPolicy.Prompt({ name: 'select_account', requestable: true }), 0);

  const provider = new Provider(issuer, {
    clients: options.clients.map(toClientMetadata),
    jwks: { keys: [signingJwk] },
    cookies: { keys: [randomBytes(32).toString('base64url')] },
    scopes: ['openid', 'offline_access', 'email', 'profile'],
    claims: {
      openid: ['sub'],
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
    rotateRefreshToken: options.rotateRefreshTokens ?? true,
    async extraTokenClaims(_ctx, token) {
      return token.kind === 'ClientCredentials' && appRoles.length > 0 ? { roles: appRoles } : undefined;
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
          if (oneOf) return oneOf[0];
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
            // User tokens stay opaque so that revocation is observable by verifyAccessToken.
            accessTokenFormat: appOnly ? 'jwt' : 'opaque',
            ...(appOnly ? { jwt: { sign: { alg: SIGNING_ALG } } } : {}),
          };
        },
      },
    },
  });

  provider.on('grant.saved', (grant) => {
    const grants = grantsByAccount.get(grant.accountId) ?? new Set<string>();
    grants.add(grant.jti);
    grantsByAccount.set(grant.accountId, grants);
  });
  provider.on('authorization.success', () => {
    counters.authorizations += 1;
  });
  provider.on('server_error', (_ctx, error) => {
    console.error('identity provider error:', error);
  });

  provider.use(async (ctx, next) => {
    if (ctx.path !== '/token' || ctx.method !== 'POST') return next();
    counters.tokenRequests += 1;
    const count = (grantType: unknown) => {
      const key = typeof grantType === 'string' && grantType ? grantType : 'unknown';
      counters.tokenRequestsByGrant[key] = (counters.tokenRequestsByGrant[key] ?? 0) + 1;
    };
    if (tokenMode === 'normal') {
      await next();
      count(ctx.oidc.params?.grant_type);
      if (tokenHook && ctx.status === 200 && isRecord(ctx.body)) ctx.body = await tokenHook(ctx.body);
      return;
    }
    count(new URLSearchParams(await readBody(ctx.req)).get('grant_type'));
    if (tokenMode === 'reset') {
      ctx.respond = false;
      ctx.req.socket.destroy();
      return;
    }
    const scripted =
      tokenMode === 'down'
        ? { status: 503, body: { error: 'temporarily_unavailable', error_description: 'The token endpoint is unavailable.' } }
        : tokenMode;
    ctx.set('cache-control', 'no-store');
    ctx.status = scripted.status;
    ctx.body = scripted.body;
  });

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
      const { sub, client_id: clientId, scope, exp, aud, roles } = payload;
      if (typeof sub !== 'string' || typeof clientId !== 'string' || typeof exp !== 'number') return undefined;
      return {
        sub,
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

  return {
    issuer,
    counters,
    verifyAccessToken,
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
      tokenMode = mode;
    },
    onTokenResponse(hook) {
      tokenHook = hook;
    },
    async signJwt(claims) {
      const now = Math.floor(Date.now() / 1000);
      return new SignJWT({ iss: issuer, iat: now, exp: now + 300, ...claims })
        .setProtectedHeader({ alg: SIGNING_ALG, kid, typ: 'JWT' })
        .sign(privateKey);
    },
    async stop() {
      await new Promise<void>((resolve, reject) => {
        server.close((error) => (error ? reject(error) : resolve()));
        server.closeAllConnections();
      });
    },
  };
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

class Users {
  readonly #byId = new Map<string, IdentityProviderUser>();
  readonly #byLogin = new Map<string, IdentityProviderUser>();

  constructor(users: IdentityProviderUser[]) {
    for (const user of users) {
      this.#byId.set(user.id, user);
      this.#byLogin.set(user.email.toLowerCase(), user);
      this.#byLogin.set(user.id.toLowerCase(), user);
    }
  }

  byId(id: string): IdentityProviderUser | undefined {
    return this.#byId.get(id);
  }

  authenticate(login: string, password: string): IdentityProviderUser | undefined {
    const user = this.#byLogin.get(login.trim().toLowerCase());
    return user && user.password === password ? user : undefined;
  }
}

/**
 * Resource servers are discovered from URL-shaped scopes rather than configured: the
 * scope's origin is the resource and every such scope seen for it is one of its scopes.
 */
class ResourceRegistry {
  readonly #scopes = new Map<string, Set<string>>();

  /** Records the URL-shaped scopes of a scope string; returns their resources in order. */
  note(scope: string | undefined): string[] {
    const found: string[] = [];
    for (const value of scope?.split(' ') ?? []) {
      const resource = originOf(value);
      if (!resource) continue;
      const scopes = this.#scopes.get(resource) ?? new Set<string>();
      scopes.add(value);
      this.#scopes.set(resource, scopes);
      if (!found.includes(resource)) found.push(resource);
    }
    return found;
  }

  scopesOf(resource: string): string[] {
    return [...(this.#scopes.get(resource) ?? [])];
  }
}

function originOf(scope: string): string | undefined {
  if (!/^https?:\/\//.test(scope)) return undefined;
  try {
    return new URL(scope).origin;
  } catch {
    return undefined;
  }
}

async function handleInteraction(provider: Provider, users: Users, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const match = /^\/interaction\/([\w-]+)(?:\/(login|confirm|abort))?$/.exec(new URL(req.url ?? '/', 'http://x').pathname);
  const action = match?.[2] ?? 'show';
  if (!match || (action === 'show') !== (req.method === 'GET')) {
    sendHtml(res, 404, page('Not found', '<p>Not found.</p>'));
    return;
  }

  let interaction: InteractionDetails;
  try {
    interaction = await provider.interactionDetails(req, res);
  } catch (error) {
    if (!(error instanceof errors.SessionNotFound)) throw error;
    sendHtml(res, 400, page('Session expired', '<p>This sign-in attempt has expired. Start again from the application.</p>'));
    return;
  }
  if (interaction.uid !== match[1]) {
    sendHtml(res, 400, page('Error', '<p>Unknown sign-in attempt.</p>'));
    return;
  }
  const prompt = interaction.prompt.name;
  const isLogin = prompt === 'login' || prompt === 'select_account';

  switch (action) {
    case 'show':
      if (isLogin) sendHtml(res, 200, loginPage(interaction));
      else if (prompt === 'consent') sendHtml(res, 200, consentPage(interaction));
      else sendHtml(res, 400, page('Error', `<p>Unsupported prompt ${escapeHtml(prompt)}.</p>`));
      return;

    case 'login': {
      if (!isLogin) break;
      const form = new URLSearchParams(await readBody(req));
      const user = users.authenticate(form.get('login') ?? '', form.get('password') ?? '');
      if (!user) {
        sendHtml(res, 401, loginPage(interaction, form.get('login') ?? '', 'Incorrect login or password.'));
        return;
      }
      await provider.interactionFinished(
        req,
        res,
        { login: { accountId: user.id }, ...(prompt === 'select_account' ? { select_account: {} } : {}) },
        { mergeWithLastSubmission: false },
      );
      return;
    }

    case 'confirm': {
      const {
        session,
        params,
        grantId,
        prompt: { details },
      } = interaction;
      if (prompt !== 'consent' || !session) break;
      const grant =
        (grantId ? await provider.Grant.find(grantId) : undefined) ??
        new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
      if (details.missingOIDCScope) grant.addOIDCScope(details.missingOIDCScope.join(' '));
      if (details.missingOIDCClaims) grant.addOIDCClaims(details.missingOIDCClaims);
      for (const [resource, scopes] of Object.entries(details.missingResourceScopes ?? {})) {
        grant.addResourceScope(resource, scopes.join(' '));
      }
      const savedGrantId = await grant.save();
      await provider.interactionFinished(req, res, { consent: { grantId: savedGrantId } }, { mergeWithLastSubmission: true });
      return;
    }

    case 'abort':
      await provider.interactionFinished(
        req,
        res,
        { error: 'access_denied', error_description: 'The user declined to authorize the application.' },
        { mergeWithLastSubmission: false },
      );
      return;
  }
  sendHtml(res, 400, page('Error', `<p>Unexpected ${escapeHtml(action)} for prompt ${escapeHtml(prompt)}.</p>`));
}

function loginPage(interaction: InteractionDetails, login?: string, error?: string): string {
  const base = `/interaction/${interaction.uid}`;
  const hint = login ?? interaction.params.login_hint ?? '';
  return page(
    'Sign in',
    `<h1>Sign in</h1>
<p>to continue to <strong>${escapeHtml(interaction.params.client_id)}</strong></p>
${error ? `<p role="alert">${escapeHtml(error)}</p>` : ''}
<form method="post" action="${base}/login">
<p><label for="login">Login</label> <input id="login" name="login" type="text" autocomplete="username" value="${escapeHtml(hint)}" required autofocus></p>
<p><label for="password">Password</label> <input id="password" name="password" type="password" autocomplete="current-password" required></p>
<p><button type="submit">Sign in</button></p>
</form>
<form method="post" action="${base}/abort"><p><button type="submit">Cancel</button></p></form>`,
  );
}

function consentPage(interaction: InteractionDetails): string {
  const base = `/interaction/${interaction.uid}`;
  const { missingOIDCScope = [], missingResourceScopes = {} } = interaction.prompt.details;
  const requested = [...missingOIDCScope, ...Object.values(missingResourceScopes).flat()];
  const scopes = requested.length > 0 ? requested : (interaction.params.scope?.split(' ') ?? []);
  return page(
    'Permissions requested',
    `<h1>Permissions requested</h1>
<p><strong>${escapeHtml(interaction.params.client_id)}</strong> asks for:</p>
<ul>${scopes.map((scope) => `<li>${escapeHtml(scope)}</li>`).join('')}</ul>
<form method="post" action="${base}/confirm"><p><button type="submit">Continue</button></p></form>
<form method="post" action="${base}/abort"><p><button type="submit">Cancel</button></p></form>`,
  );
}

function page(title: string, body: string): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(title)}</title></head>
<body>
${body}
</body></html>`;
}

function sendHtml(res: ServerResponse, status: number, html: string): void {
  res.writeHead(status, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' }).end(html);
}

function escapeHtml(value: string): string {
  return value.replace(/[&<>"']/g, (char) => `&#${char.charCodeAt(0)};`);
}

async function readBody(req: IncomingMessage, limit = 64 * 1024): Promise<string> {
  let body = '';
  for await (const chunk of req) {
    body += String(chunk);
    if (body.length > limit) throw new Error('request body too large');
  }
  return body;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isStringArray(value: unknown): value is string[] {
  return Array.isArray(value) && value.every((item) => typeof item === 'string');
}
