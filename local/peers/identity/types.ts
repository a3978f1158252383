/** What the local identity provider is given and what it offers its callers (tests, the local stack). */
import type { JSONWebKeySet } from 'jose';

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
  /** Microsoft-shaped users: the id_token carries `tid` (this) and `oid` (`objectId`, default: the id). */
  tenantId?: string;
  objectId?: string;
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
  /**
   * Overrides rotateRefreshTokens, to stand in for each kind of provider: `revoking` (a new refresh token each
   * time, the previous one consumed: replaying it revokes the grant), `reusable` (Microsoft: a new one each time,
   * the previous ones keep working), `none` (Google: the same token keeps working).
   */
  refreshTokenRotation?: 'none' | 'reusable' | 'revoking';
  /** `roles` claim of client_credentials access tokens, e.g. ['SMTP.SendAsApp']. */
  appRoles?: string[];
  /** `roles` per token audience, over `appRoles`: e.g. `{ 'https://graph.microsoft.com': ['Mail.Send'] }`. */
  appRolesByAudience?: Record<string, string[]>;
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
  /** Microsoft Graph user tokens: the delegated permissions, short names (`Mail.Send`). */
  scp?: string;
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
  /** The protected header of every client assertion the token endpoint received (private_key_jwt), in order. */
  readonly clientAssertionHeaders: ReadonlyArray<Record<string, unknown>>;
  setTokenEndpoint(mode: TokenEndpointMode): void;
  /** Rewrites every successful token response until called again without a hook. */
  onTokenResponse(hook?: TokenResponseHook): void;
  /** Signs with the id_token key; iss, iat and exp (+5 min) are filled in unless given. */
  signJwt(claims: Record<string, unknown>): Promise<string>;
  /**
   * A grant and its refresh token as if the user had signed in and consented, without the pages: for
   * benchmarks that need thousands of authorized accounts. OIDC scopes only (e.g. "openid email offline_access").
   */
  grantRefreshToken(grant: { userId: string; clientId: string; scope: string }): Promise<string>;
  stop(): Promise<void>;
}
