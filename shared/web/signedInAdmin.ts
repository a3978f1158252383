import { readSetting, type Env } from '../settings';

/** What a header lookup needs: the Functions HttpRequest's headers, or any Headers. */
interface HeaderSource {
  get(name: string): string | null;
}

/**
 * The admin signed in through App Service Authentication (Microsoft Entra ID), as its front end tells the app in
 * `X-MS-CLIENT-PRINCIPAL-NAME`. Trusted only when the platform enforces the sign-in (WEBSITE_AUTH_ENABLED, set
 * by App Service when authentication is on): without it, any caller could send the header.
 */
export function signedInAdmin(headers: HeaderSource, env: Env): string | undefined {
  if (readSetting(env, 'WEBSITE_AUTH_ENABLED')?.toLowerCase() !== 'true') return undefined;
  if ((headers.get('x-ms-client-principal-idp') ?? '').toLowerCase() !== 'aad') return undefined;
  const name = headers.get('x-ms-client-principal-name')?.trim();
  return name && /^[^\r\n\0]{1,256}$/.test(name) ? name : undefined;
}
