import { readCookies, serializeCookie } from '../web/cookies';
import { AUTH_REQUEST_TTL_MS, isWellFormedBrowserSecret } from './authRequests';

/**
 * The cookie that binds a pending authorization to the admin's browser.
 *
 * Over https it is `__Host-oauth-outbox-auth`: the prefix makes the browser refuse it unless it is Secure,
 * host-only and Path=/, so no sibling subdomain can plant one. That requires Path=/ (not the callback path),
 * and we keep Path=/ on plain-http loopback too, where the prefix and Secure are impossible.
 * SameSite=Lax: the provider's redirect back is a top-level GET navigation, which carries Lax cookies.
 */
const SECURE_NAME = '__Host-oauth-outbox-auth';
const LOCAL_NAME = 'oauth-outbox-auth';

export function authCookieName(publicBaseUrl: string): string {
  return isHttps(publicBaseUrl) ? SECURE_NAME : LOCAL_NAME;
}

export function authCookieHeader(publicBaseUrl: string, browserSecret: string): string {
  const secure = isHttps(publicBaseUrl);
  return serializeCookie(authCookieName(publicBaseUrl), browserSecret, {
    maxAgeSeconds: AUTH_REQUEST_TTL_MS / 1000,
    path: '/',
    secure,
    httpOnly: true,
    sameSite: 'Lax',
  });
}

/** The well-formed binding values this request carries (usually zero or one). */
export function browserSecretsFrom(cookieHeader: string | null | undefined, publicBaseUrl: string): string[] {
  return readCookies(cookieHeader, authCookieName(publicBaseUrl)).filter(isWellFormedBrowserSecret);
}

function isHttps(url: string): boolean {
  return url.toLowerCase().startsWith('https://');
}
