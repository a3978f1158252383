/**
 * Drives the authorize and callback functions the way a browser would, for tests: calls the handlers with
 * HttpRequest objects, keeps the binding cookie, and records pages, codes and verifiers in the bench.
 */
import type { HttpResponseInit } from '@azure/functions';
import { authorize } from '../../functions/authorize';
import { oauthCallback } from '../../functions/oauthCallback';
import { openVerifier } from '../../shared/authorization/authRequests';
import { authRequestTable } from '../../shared/authorization/startAuthorization';
import type { AuthorizationBench } from './authorizationBench';
import { HttpRequest } from './azureFunctions';
import { driveLogin, type DriveLoginOptions } from './driveLogin';

export interface Started {
  /** The provider's authorization URL the app redirected to. */
  authorizeUrl: URL;
  state: string;
  /** `name=value`, as the browser sends it back. */
  cookie: string;
  /** The raw Set-Cookie header. */
  setCookie: string;
  browserSecret: string;
}

export interface Page {
  status: number;
  headers: Headers;
  body: string;
}

export function authorizationClient(bench: AuthorizationBench) {
  const { publicBaseUrl, secrets, outputs } = bench;

  async function start(accountId = 'mailbox', cookie?: string, extraHeaders: Record<string, string> = {}): Promise<Started> {
    const response = await authorize(
      new HttpRequest({
        method: 'GET',
        url: `${publicBaseUrl}/api/accounts/${encodeURIComponent(accountId)}/authorize`,
        params: { id: accountId },
        headers: { ...(cookie ? { cookie } : {}), ...extraHeaders },
      }),
    );
    const headers = new Headers(response.headers as Record<string, string>);
    if (response.status !== 302) {
      throw new Error(`authorize answered ${response.status}: ${typeof response.body === 'string' ? response.body : ''}`);
    }
    const authorizeUrl = new URL(headers.get('location')!);
    const setCookie = headers.get('set-cookie')!;
    const pair = setCookie.split(';')[0]!;
    const browserSecret = pair.slice(pair.indexOf('=') + 1);
    const state = authorizeUrl.searchParams.get('state')!;
    secrets.add(browserSecret);
    // The verifier exists only encrypted; open it the way the callback does, so the leak check can look for it.
    const row = await authRequestTable(bench.runtime).find(state);
    const verifier = row && openVerifier(row, browserSecret);
    if (verifier) secrets.add(verifier);
    return { authorizeUrl, state, cookie: pair, setCookie, browserSecret };
  }

  /** Signs in at the provider (and consents); returns the URL the provider sends the browser back to. */
  async function signIn(
    authorizeUrl: URL | string,
    user: { email: string; password: string },
    options: DriveLoginOptions = {},
  ): Promise<URL> {
    const { callbackUrl } = await driveLogin(String(authorizeUrl), { login: user.email, password: user.password }, options);
    const url = new URL(callbackUrl);
    const code = url.searchParams.get('code');
    if (code) secrets.add(code);
    return url;
  }

  async function callback(callbackUrl: URL | string, cookie?: string): Promise<Page> {
    const response: HttpResponseInit = await oauthCallback(
      new HttpRequest({ method: 'GET', url: String(callbackUrl), headers: cookie ? { cookie } : {} }),
    );
    const body = typeof response.body === 'string' ? response.body : '';
    outputs.push(body);
    return { status: response.status ?? 200, headers: new Headers(response.headers as Record<string, string>), body };
  }

  return { start, signIn, callback };
}

/** The page's visible text, for assertions that read like what a person sees. */
export function textOf(html: string): string {
  return html
    .replace(/<style[\s\S]*?<\/style>/g, ' ')
    .replace(/<[^>]+>/g, ' ')
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&quot;/g, '"')
    .replace(/&#39;/g, "'")
    .replace(/&amp;/g, '&')
    .replace(/\s+/g, ' ')
    .trim();
}
