// oidc-provider ships no type declarations. This covers only the surface used by
// identityProvider.ts; extend it as needed rather than reaching for `any`.
declare module 'oidc-provider' {
  import type { IncomingMessage, ServerResponse } from 'node:http';

  export interface ClientMetadata {
    client_id: string;
    client_secret?: string;
    redirect_uris?: string[];
    grant_types?: string[];
    response_types?: string[];
    token_endpoint_auth_method?: string;
    jwks?: { keys: object[] };
    scope?: string;
  }

  export interface Client {
    clientId: string;
    clientAuthMethod: string;
    grantTypeAllowed(grantType: string): boolean;
  }

  export interface OIDCParams {
    scope?: string;
    grant_type?: string;
    [name: string]: unknown;
  }

  export interface OIDCContext {
    readonly route: string;
    readonly client?: Client;
    readonly body?: Record<string, unknown>;
    params?: OIDCParams;
    /** What the request resolved to; after a refresh_token grant, `RefreshToken` is the token that was used. */
    readonly entities: { RefreshToken?: RefreshToken; Client?: Client };
  }

  /** The Koa context oidc-provider hands to middleware and configuration helpers. */
  export interface KoaContextWithOIDC {
    readonly method: string;
    readonly path: string;
    readonly query: Record<string, string | string[] | undefined>;
    readonly req: IncomingMessage;
    readonly res: ServerResponse;
    status: number;
    body: unknown;
    respond: boolean;
    set(field: string, value: string): void;
    readonly oidc: OIDCContext;
  }

  export interface ResourceServerInfo {
    scope: string;
    audience?: string;
    accessTokenTTL?: number;
    accessTokenFormat?: 'opaque' | 'jwt';
    jwt?: { sign?: { alg?: string } };
  }

  export interface Account {
    accountId: string;
    claims(use: string, scope: string): Promise<Record<string, unknown>>;
  }

  interface BaseToken {
    readonly jti: string;
    readonly kind: string;
    readonly clientId: string;
    readonly exp: number;
    readonly iat: number;
    readonly isExpired: boolean;
    readonly scopes: Set<string>;
    accountId?: string;
    grantId?: string;
    scope?: string;
    aud?: string | string[];
    resourceServer?: { audience?: string };
    extra?: Record<string, unknown>;
    destroy(): Promise<void>;
  }

  interface TokenModel<T> {
    new (init: Record<string, unknown>): T & { save(): Promise<string> };
    find(value: string, options?: { ignoreExpiration?: boolean }): Promise<T | undefined>;
    revokeByGrantId(grantId: string): Promise<void>;
  }

  export type AccessToken = BaseToken;
  export type ClientCredentials = BaseToken;
  export type RefreshToken = BaseToken;
  export type AuthorizationCode = BaseToken;

  export interface Grant {
    readonly jti: string;
    accountId: string;
    clientId: string;
    addOIDCScope(scope: string): void;
    addOIDCClaims(claims: string[]): void;
    addResourceScope(resource: string, scope: string): void;
    save(): Promise<string>;
    destroy(): Promise<void>;
  }

  export interface InteractionDetails {
    uid: string;
    prompt: {
      name: string;
      reasons: string[];
      details: {
        missingOIDCScope?: string[];
        missingOIDCClaims?: string[];
        missingResourceScopes?: Record<string, string[]>;
      };
    };
    params: { client_id: string; scope?: string; login_hint?: string; [name: string]: unknown };
    session?: { accountId: string };
    grantId?: string;
  }

  export type InteractionResults =
    | { error: string; error_description?: string }
    | { login?: { accountId: string }; consent?: { grantId?: string }; [prompt: string]: unknown };

  export interface Configuration {
    /** A factory of storage adapters, one per model name. */
    adapter?: (model: string) => object;
    clients?: ClientMetadata[];
    jwks?: { keys: object[] };
    cookies?: { keys?: string[] };
    claims?: Record<string, string[] | null>;
    scopes?: string[];
    conformIdTokenClaims?: boolean;
    clientBasedCORS?: (ctx: KoaContextWithOIDC, origin: string, client: Client) => boolean;
    findAccount?: (ctx: KoaContextWithOIDC, sub: string) => Promise<Account | undefined>;
    extraParams?: Record<string, (ctx: KoaContextWithOIDC, value: unknown, client: Client) => void | Promise<void>>;
    issueRefreshToken?: (ctx: KoaContextWithOIDC, client: Client, code: BaseToken) => Promise<boolean>;
    rotateRefreshToken?: boolean;
    extraTokenClaims?: (ctx: KoaContextWithOIDC, token: BaseToken) => Promise<Record<string, unknown> | undefined>;
    pkce?: { required: (ctx: KoaContextWithOIDC, client: Client) => boolean };
    interactions?: { policy?: unknown[]; url?: (ctx: KoaContextWithOIDC, interaction: { uid: string }) => Promise<string> };
    renderError?: (ctx: KoaContextWithOIDC, out: Record<string, string>, error: Error) => Promise<void>;
    ttl?: Record<string, number>;
    features?: {
      devInteractions?: { enabled: boolean };
      clientCredentials?: { enabled: boolean };
      revocation?: {
        enabled: boolean;
        allowedPolicy?: (ctx: KoaContextWithOIDC, client: Client, token: BaseToken) => Promise<boolean>;
      };
      introspection?: {
        enabled: boolean;
        allowedPolicy?: (ctx: KoaContextWithOIDC, client: Client, token: BaseToken) => Promise<boolean>;
      };
      pushedAuthorizationRequests?: { enabled: boolean };
      rpInitiatedLogout?: { enabled: boolean };
      resourceIndicators?: {
        enabled: boolean;
        defaultResource?: (ctx: KoaContextWithOIDC, client: Client, oneOf?: string[]) => Promise<string | string[] | undefined>;
        useGrantedResource?: (ctx: KoaContextWithOIDC, model: BaseToken) => Promise<boolean>;
        getResourceServerInfo?: (ctx: KoaContextWithOIDC, resource: string, client: Client) => Promise<ResourceServerInfo>;
      };
    };
  }

  export type Middleware = (ctx: KoaContextWithOIDC, next: () => Promise<void>) => Promise<void>;

  export class Provider {
    constructor(issuer: string, configuration?: Configuration);
    readonly issuer: string;
    readonly AccessToken: TokenModel<AccessToken>;
    readonly ClientCredentials: TokenModel<ClientCredentials>;
    readonly RefreshToken: TokenModel<RefreshToken>;
    readonly AuthorizationCode: TokenModel<AuthorizationCode>;
    readonly Grant: {
      new (init: { accountId: string; clientId: string }): Grant;
      find(id: string): Promise<Grant | undefined>;
    };
    readonly Client: { find(id: string): Promise<Client | undefined> };
    callback(): (req: IncomingMessage, res: ServerResponse) => void;
    use(middleware: Middleware): this;
    on(event: 'grant.saved', listener: (grant: Grant) => void): this;
    on(event: 'authorization.success', listener: (ctx: KoaContextWithOIDC) => void): this;
    on(event: 'server_error', listener: (ctx: KoaContextWithOIDC, error: Error) => void): this;
    interactionDetails(req: IncomingMessage, res: ServerResponse): Promise<InteractionDetails>;
    interactionFinished(
      req: IncomingMessage,
      res: ServerResponse,
      result: InteractionResults,
      options?: { mergeWithLastSubmission?: boolean },
    ): Promise<void>;
  }

  export namespace interactionPolicy {
    class Prompt {
      constructor(options: { name: string; requestable: boolean });
    }
    interface Policy extends Array<Prompt> {
      add(prompt: Prompt, index?: number): void;
    }
    function base(): Policy;
  }

  export namespace errors {
    class OIDCProviderError extends Error {
      status: number;
      error: string;
      error_description?: string;
    }
    class SessionNotFound extends OIDCProviderError {}
  }

  export default Provider;
}

declare module 'oidc-provider/lib/adapters/memory_adapter.js' {
  /** oidc-provider's in-memory adapter, given the store it keeps its entries in. */
  export default class MemoryAdapter {
    constructor(
      model: string,
      store: {
        get(key: string): unknown;
        set(key: string, value: unknown, options?: { maxAge?: number }): void;
        delete(key: string): void;
      },
    );
  }
}
