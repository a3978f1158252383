import { decodeJwt } from 'jose';
import type { TokenEndpointResponse } from 'openid-client';

/** An access token as the send path uses it. */
export interface AccessTokenRecord {
  accessToken: string;
  /** Epoch milliseconds. */
  expiresAt: number;
  scope?: string;
}

/** What a token endpoint gave us, as we keep it. */
export interface TokenSet extends AccessTokenRecord {
  /** Absent when the provider returned none (Google usually): the stored one stays. */
  refreshToken?: string;
}

/** Lifetime assumed when the provider states none and the token is not a JWT. */
const DEFAULT_LIFETIME_SECONDS = 3600;

/** What the token store keeps from a token endpoint response. `refreshToken` is absent when none was returned. */
export function toTokenSet(response: TokenEndpointResponse, now: number = Date.now()): TokenSet {
  return {
    accessToken: response.access_token,
    expiresAt: accessTokenExpiry(response, now),
    ...(typeof response.refresh_token === 'string' && response.refresh_token !== ''
      ? { refreshToken: response.refresh_token }
      : {}),
    ...(typeof response.scope === 'string' && response.scope !== '' ? { scope: response.scope } : {}),
  };
}

/** Epoch milliseconds: from `expires_in`, else the JWT's `exp`, else one hour. */
export function accessTokenExpiry(
  response: Pick<TokenEndpointResponse, 'access_token' | 'expires_in'>,
  now: number = Date.now(),
): number {
  if (typeof response.expires_in === 'number' && response.expires_in > 0) return now + response.expires_in * 1000;
  try {
    const { exp } = decodeJwt(response.access_token);
    if (typeof exp === 'number') return exp * 1000;
  } catch {
    // not a JWT (Google's access tokens are opaque)
  }
  return now + DEFAULT_LIFETIME_SECONDS * 1000;
}
