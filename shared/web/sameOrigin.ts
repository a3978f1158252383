export type OriginCheck = { ok: true } | { ok: false; reason: string };

/**
 * The CSRF defence of the admin's POSTs (test email, messages). A function key in the URL is not sent by the
 * browser on its own, but an Easy Auth session cookie is, so a page elsewhere could make a signed-in admin's
 * browser post a form here. Current browsers send `Sec-Fetch-Site` on every request, which pages cannot set:
 * it must say `same-origin`. `Origin`, when it names a site, must be PUBLIC_BASE_URL's; it is often "null"
 * because our pages send `Referrer-Policy: no-referrer`, which also blanks the Origin of a form post, so it
 * only decides for browsers without fetch metadata (then "null" is refused). A request with neither header
 * comes from a program (curl, a producer) that holds its own credentials and cannot be steered by another
 * site: it passes, and the function key or Easy Auth decides as for any call. No token in the page, no state.
 */
export function checkSameOrigin(headers: { get(name: string): string | null }, publicBaseUrl: string): OriginCheck {
  const expected = new URL(publicBaseUrl).origin;
  const origin = headers.get('origin');
  const site = headers.get('sec-fetch-site');
  const refused: OriginCheck = {
    ok: false,
    reason: `Refused a request from another site. Use the forms of the status page at ${expected}, or call the API without a browser.`,
  };
  if (origin !== null && origin !== 'null' && origin !== expected) return refused;
  if (site !== null) return site === 'same-origin' || site === 'none' ? { ok: true } : refused;
  return origin === 'null' ? refused : { ok: true };
}
