/**
 * The token endpoint as tests script it: every request is counted (by grant type), a mode other than 'normal'
 * answers instead of the provider (down, connection reset, any status and body), and a hook may rewrite the
 * successful responses.
 */
import { decodeProtectedHeader } from 'jose';
import type { Middleware } from 'oidc-provider';
import { readBody } from './interactions';
import type { IdentityProviderCounters, TokenEndpointMode, TokenResponseHook } from './types';

export class TokenEndpointScript {
  readonly counters: IdentityProviderCounters = { tokenRequests: 0, tokenRequestsByGrant: {}, authorizations: 0 };
  /** The protected header of every client assertion (private_key_jwt) the token endpoint received, in order. */
  readonly clientAssertionHeaders: Array<Record<string, unknown>> = [];
  mode: TokenEndpointMode = 'normal';
  hook: TokenResponseHook | undefined;

  readonly middleware: Middleware = async (ctx, next) => {
    if (ctx.path !== '/token' || ctx.method !== 'POST') return next();
    const counters = this.counters;
    counters.tokenRequests += 1;
    const count = (grantType: unknown) => {
      const key = typeof grantType === 'string' && grantType ? grantType : 'unknown';
      counters.tokenRequestsByGrant[key] = (counters.tokenRequestsByGrant[key] ?? 0) + 1;
    };
    const tokenMode = this.mode;
    if (tokenMode === 'normal') {
      await next();
      count(ctx.oidc.params?.grant_type);
      const assertion = ctx.oidc.params?.client_assertion;
      if (typeof assertion === 'string') {
        try {
          this.clientAssertionHeaders.push(decodeProtectedHeader(assertion) as Record<string, unknown>);
        } catch {
          // not a JWT: the provider refused it already
        }
      }
      if (this.hook && ctx.status === 200 && isRecord(ctx.body)) ctx.body = await this.hook(ctx.body);
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
  };
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
