/**
 * Where the status page lives (under the host's /api prefix), shared by its registration and every link to it.
 *
 * Not `admin`: the Functions host reserves every route that starts with "admin" for its own management API,
 * whatever the route prefix, and puts such a function in an error state at start ("The specified route
 * conflicts with one or more built in routes"; Azure/azure-functions-host#1781). Locally nothing complains.
 */
export const STATUS_PAGE_ROUTE = 'status';
export const STATUS_PAGE_PATH = `/api/${STATUS_PAGE_ROUTE}`;

/** `/api/accounts/{id}` and its actions, as same-origin paths. */
export function accountPath(accountId: string, action?: 'authorize' | 'test'): string {
  return `/api/accounts/${encodeURIComponent(accountId)}${action ? `/${action}` : ''}`;
}

export const CALLBACK_ROUTE = 'oauth/callback';

/**
 * The OAuth redirect URI, built from the configured public base URL, never from the request's Host or
 * X-Forwarded-Host (a proxy in between would make it differ from the one registered with the provider).
 */
export function callbackUrl(publicBaseUrl: string): string {
  return `${publicBaseUrl.replace(/\/+$/, '')}/api/${CALLBACK_ROUTE}`;
}
