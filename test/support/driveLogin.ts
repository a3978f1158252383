/**
 * Plays the user's browser against local/peers/identity/identityProvider.ts with plain fetch: follows the
 * authorization request through the sign-in and consent pages and returns the redirect to
 * the client's redirect_uri without requesting it.
 */

export interface LoginUser {
  login: string;
  password: string;
}

export interface DriveLoginOptions {
  /** Press "Cancel" on the consent page; the callback then carries error=access_denied. */
  denyConsent?: boolean;
}

const MAX_STEPS = 20;

export async function driveLogin(
  authorizeUrl: string,
  user: LoginUser,
  opts: DriveLoginOptions = {},
): Promise<{ callbackUrl: string }> {
  const providerOrigin = new URL(authorizeUrl).origin;
  const jar = new CookieJar();
  let response = await jar.fetch(authorizeUrl);

  for (let step = 0; step < MAX_STEPS; step += 1) {
    const location = response.headers.get('location');
    if (response.status >= 300 && response.status < 400 && location) {
      const next = new URL(location, response.url);
      if (next.origin !== providerOrigin) return { callbackUrl: next.href };
      response = await jar.fetch(next.href);
      continue;
    }

    const html = await response.text();
    if (response.status !== 200) {
      throw new Error(`identity provider answered ${response.status} at ${response.url}: ${textOf(html)}`);
    }
    const signIn = findForm(html, 'Sign in');
    const consent = findForm(html, opts.denyConsent ? 'Cancel' : 'Continue');
    if (signIn) {
      response = await jar.fetch(new URL(signIn, response.url).href, {
        login: user.login,
        password: user.password,
      });
      if (response.status === 401) throw new Error(`sign-in rejected for ${user.login}`);
    } else if (consent) {
      response = await jar.fetch(new URL(consent, response.url).href, {});
    } else {
      throw new Error(`unexpected page at ${response.url}: ${textOf(html)}`);
    }
  }
  throw new Error('too many redirects while driving the login');
}

/** The action of the form that holds a button with this label. */
function findForm(html: string, buttonLabel: string): string | undefined {
  for (const [, action, inner] of html.matchAll(/<form[^>]*\baction="([^"]*)"[^>]*>([\s\S]*?)<\/form>/g)) {
    if (inner?.includes(`>${buttonLabel}</button>`)) return action?.replaceAll('&amp;', '&');
  }
  return undefined;
}

function textOf(html: string): string {
  return html
    .replace(/<[^>]+>/g, ' ')
    .replace(/\s+/g, ' ')
    .trim()
    .slice(0, 500);
}

/** Just enough of a cookie jar for one host: name, path and deletion. */
class CookieJar {
  readonly #cookies = new Map<string, { name: string; value: string; path: string }>();

  async fetch(url: string, form?: Record<string, string>): Promise<Response> {
    const headers = new Headers();
    const cookie = this.#header(new URL(url).pathname);
    if (cookie) headers.set('cookie', cookie);
    const init: RequestInit = { redirect: 'manual', headers };
    if (form) {
      init.method = 'POST';
      init.body = new URLSearchParams(form);
    }
    const response = await fetch(url, init);
    for (const setCookie of response.headers.getSetCookie()) this.#store(setCookie);
    return response;
  }

  #header(pathname: string): string {
    return [...this.#cookies.values()]
      .filter(({ path }) => pathname === path || pathname.startsWith(path.endsWith('/') ? path : `${path}/`))
      .map(({ name, value }) => `${name}=${value}`)
      .join('; ');
  }

  #store(setCookie: string): void {
    const [pair = '', ...attributes] = setCookie.split(';').map((part) => part.trim());
    const eq = pair.indexOf('=');
    if (eq < 1) return;
    const name = pair.slice(0, eq);
    const value = pair.slice(eq + 1);
    let path = '/';
    let expired = value === '';
    for (const attribute of attributes) {
      const [key = '', val = ''] = attribute.split('=');
      if (key.toLowerCase() === 'path' && val) path = val;
      if (key.toLowerCase() === 'expires' && Date.parse(val) <= Date.now()) expired = true;
      if (key.toLowerCase() === 'max-age' && Number(val) <= 0) expired = true;
    }
    const key = `${name};${path}`;
    if (expired) this.#cookies.delete(key);
    else this.#cookies.set(key, { name, value, path });
  }
}
