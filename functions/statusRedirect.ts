import { app, type HttpRequest, type HttpResponseInit } from '@azure/functions';
import { functionKeyOf, withFunctionKey } from '../shared/web/functionKey';
import { STATUS_PAGE_PATH } from '../shared/web/routes';

/**
 * `/api` and `/api/admin`, where people look for the admin page, lead to the status page (with the function key
 * they came with).
 *
 * The route is a parameter, not the word: the Functions host refuses a function whose route template starts with
 * "admin" or "runtime" (ScriptHost.ValidateHttpFunction), but its built-in admin API lives at /admin, outside the
 * /api prefix, so `/api/admin` itself is free. The regex keeps the route from catching other paths in Azure, where
 * the host tries function routes in the order of the functions' names rather than literal-first; the local runner
 * does not evaluate the regex, so the handler checks the word again.
 *
 * `/` cannot be served by a function while host.json keeps the route prefix `api`: it is the host's own page.
 */
const STATUS_REDIRECT_ROUTE = '{page:regex(^admin$)?}';

export function statusRedirect(request: HttpRequest): HttpResponseInit {
  const page = request.params.page;
  if (page !== undefined && page.toLowerCase() !== 'admin') return { status: 404 };
  return {
    status: 302,
    headers: { Location: withFunctionKey(STATUS_PAGE_PATH, functionKeyOf(request)), 'Cache-Control': 'no-store' },
  };
}

app.http('statusRedirect', {
  methods: ['GET'],
  authLevel: 'function',
  route: STATUS_REDIRECT_ROUTE,
  handler: statusRedirect,
});
