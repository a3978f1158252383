import type { HttpRequest } from '@azure/functions';

/**
 * The function key the page was opened with: Azure accepts it as `?code=`. The admin page carries it to the
 * links and forms that need it (they are function-level routes too) and nowhere else; with Easy Auth or
 * locally there is none. Anything that does not look like a key is dropped rather than reflected.
 */
export function functionKeyOf(request: Pick<HttpRequest, 'query'>): string | undefined {
  const code = request.query.get('code');
  return code && /^[\x21-\x7e]{1,256}$/.test(code) ? code : undefined;
}

/** `path` with the key (if any) and `params` as its query string. */
export function withFunctionKey(path: string, key: string | undefined, params: Record<string, string> = {}): string {
  const query = new URLSearchParams({ ...(key ? { code: key } : {}), ...params }).toString();
  return query ? `${path}?${query}` : path;
}
