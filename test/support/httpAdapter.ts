/**
 * Serves Functions HTTP handlers on loopback with node:http, for tests that need a real browser: routes use the
 * Functions syntax (`accounts/{id}/authorize`, under /api), requests become HttpRequest, HttpResponseInit goes
 * back as status, headers, Set-Cookie and body.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type {
  Cookie,
  HttpRequest as HttpRequestType,
  HttpResponseInit,
  InvocationContext as InvocationContextType,
} from '@azure/functions';
import { serializeCookie } from '../../shared/web/cookies';
import { HttpRequest, InvocationContext } from './azureFunctions';

export type Handler = (request: HttpRequestType, context: InvocationContextType) => Promise<HttpResponseInit>;

export interface Route {
  methods: string[];
  /** Functions route template without the /api prefix, e.g. `accounts/{id}/authorize`. */
  route: string;
  handler: Handler;
}

export interface HttpAdapter {
  /** e.g. http://127.0.0.1:41234 */
  readonly url: string;
  readonly port: number;
  /** Called with every response body sent (pages for the leak check). */
  onBody?: (body: string) => void;
  /**
   * Answers instead of the handler when it returns a response (a test holding a browser back). Needed because
   * Playwright's page.route does not see requests reached through a redirect, as the OAuth callback is.
   */
  intercept?: (url: URL) => HttpResponseInit | undefined;
  stop(): Promise<void>;
}

export async function startHttpAdapter(routes: Route[], options: { port?: number } = {}): Promise<HttpAdapter> {
  const compiled = routes.map((route) => ({ ...route, pattern: compile(route.route) }));
  const server = createServer((req, res) => {
    serve(req, res).catch((error: unknown) => {
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
      res.end(`adapter error: ${(error as Error).message}`);
    });
  });

  const adapter: HttpAdapter = {
    url: '',
    port: 0,
    async stop() {
      await new Promise<void>((resolve, reject) => {
        server.close((error) => (error ? reject(error) : resolve()));
        server.closeAllConnections();
      });
    },
  };

  async function serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', adapter.url);
    const path = url.pathname.startsWith('/api/') ? url.pathname.slice('/api/'.length) : undefined;
    const match = path === undefined ? undefined : findRoute(path, req.method ?? 'GET');
    if (!match) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
      return;
    }
    const headers: Record<string, string> = {};
    for (const [name, value] of Object.entries(req.headers)) {
      if (value !== undefined) headers[name] = Array.isArray(value) ? value.join(', ') : value;
    }
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = chunks.length > 0 ? { body: { bytes: Buffer.concat(chunks) } } : {};
    const request = new HttpRequest({ method: req.method ?? 'GET', url: url.href, headers, params: match.params, ...body });
    const response =
      adapter.intercept?.(url) ?? (await match.handler(request, new InvocationContext({ functionName: match.route })));
    const out = new Headers(response.headers as Record<string, string> | undefined);
    const setCookies = [
      ...(out.getSetCookie?.() ?? []),
      ...((response.cookies ?? []) as Cookie[]).map((cookie) =>
        serializeCookie(cookie.name, cookie.value, {
          ...(cookie.maxAge !== undefined ? { maxAgeSeconds: cookie.maxAge } : {}),
          ...(cookie.path ? { path: cookie.path } : {}),
          ...(cookie.secure ? { secure: true } : {}),
          ...(cookie.httpOnly ? { httpOnly: true } : {}),
          ...(cookie.sameSite ? { sameSite: cookie.sameSite } : {}),
        }),
      ),
    ];
    out.delete('set-cookie');
    const headerObject: Record<string, string | string[]> = Object.fromEntries(out.entries());
    if (setCookies.length > 0) headerObject['set-cookie'] = setCookies;
    const text =
      typeof response.body === 'string'
        ? response.body
        : response.jsonBody !== undefined
          ? JSON.stringify(response.jsonBody)
          : '';
    if (response.jsonBody !== undefined && !out.has('content-type')) headerObject['content-type'] = 'application/json';
    adapter.onBody?.(text);
    res.writeHead(response.status ?? 200, headerObject).end(text);
  }

  function findRoute(path: string, method: string) {
    for (const route of compiled) {
      if (!route.methods.includes(method)) continue;
      const m = route.pattern.exec(path);
      if (!m) continue;
      const params = Object.fromEntries(Object.entries(m.groups ?? {}).map(([k, v]) => [k, decodeURIComponent(v)]));
      return { ...route, params };
    }
    return undefined;
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  Object.assign(adapter, { port, url: `http://127.0.0.1:${port}` });
  return adapter;
}

function compile(route: string): RegExp {
  const source = route
    .split('/')
    .map((segment) => {
      const param = /^\{(\w+)\}$/.exec(segment);
      return param ? `(?<${param[1]}>[^/]+)` : segment.replace(/[.*+?^$()|[\]\\]/g, '\\$&');
    })
    .join('/');
  return new RegExp(`^${source}$`);
}
