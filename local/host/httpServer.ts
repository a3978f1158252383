/**
 * Serves the HTTP functions on loopback the way the Functions host does: the route prefix (`/api`), route
 * parameters, `HttpRequest` in, `HttpResponseInit` or `HttpResponse` out (status, headers, cookies, body or
 * jsonBody). Routes the host refuses are refused here too, before anything listens.
 *
 * Function keys: like `func start`, none are checked unless a key is given (LOCAL_FUNCTION_KEY). With one, every
 * route whose auth level is not `anonymous` answers 401, as Azure does, unless the request carries that key in
 * the `x-functions-key` header or the `code` query parameter (the header wins). The one key stands for all of
 * Azure's: function keys, host keys and the master key.
 */
import { timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Cookie, HttpResponseInit, HttpResponse as HttpResponseType } from '@azure/functions';
import { assertRegistrable, type HttpFunctionDefinition } from './functionRegistry';
import { RouteTable } from './httpRoutes';
import { HttpRequest, HttpResponse, invocationContext } from './invocationContext';
import { listenHttp } from '../listenHttp';

export interface FunctionsHttpServerOptions {
  host: string;
  port: number;
  routePrefix: string;
  functions: readonly HttpFunctionDefinition[];
  /** When set, required on every route that is not anonymous. */
  functionKey?: string;
  /** One line per request, e.g. `GET /api/health 200 3 ms`. */
  log?: (line: string) => void;
}

export interface FunctionsHttpServer {
  readonly url: string;
  stop(): Promise<void>;
}

/** The host's request size limit. */
const MAX_BODY_BYTES = 100 * 1024 * 1024;

export async function startFunctionsHttpServer(options: FunctionsHttpServerOptions): Promise<FunctionsHttpServer> {
  options.functions.forEach((fn, index) => assertRegistrable(fn, options.functions.slice(0, index)));
  const routes = new RouteTable(
    options.functions.map((fn) => ({ template: fn.route, methods: fn.methods, target: fn })),
    options.routePrefix,
  );
  const log = options.log ?? (() => {});

  const server = createServer((req, res) => {
    const started = Date.now();
    void serve(req, res).then(
      () => log(`${req.method} ${pathOf(req.url)} ${res.statusCode} ${Date.now() - started} ms`),
      (error: unknown) => {
        console.error(`${req.method} ${pathOf(req.url)} failed:`, error);
        if (!res.headersSent) res.writeHead(500).end();
        else res.destroy();
      },
    );
  });

  async function serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    // The URL the client asked for, as the function sees it in Azure (with port 0 asked for, the real port).
    const url = new URL(
      req.url ?? '/',
      `http://${req.headers.host ?? `${options.host}:${req.socket.localPort ?? options.port}`}`,
    );
    const method = (req.method ?? 'GET').toUpperCase();
    const matched = routes.match(method, url.pathname);
    if (!matched.found) {
      res
        .writeHead(404, { 'content-type': 'text/plain; charset=utf-8' })
        .end(
          matched.pathMatched
            ? `No function answers ${method} ${url.pathname}.\n`
            : `No function has the route ${url.pathname}.\n`,
        );
      return;
    }
    const { target: fn, params } = matched.found;
    if (fn.authLevel !== 'anonymous' && options.functionKey !== undefined && !carriesKey(req, url, options.functionKey)) {
      req.resume();
      res.writeHead(401).end();
      return;
    }
    const body = await readBody(req);
    if (body === undefined) {
      res.writeHead(413).end();
      return;
    }
    const request = new HttpRequest({
      method,
      url: url.href,
      headers: headersOf(req),
      params,
      ...(body.length > 0 ? { body: { bytes: body } } : {}),
    });
    let result: HttpResponseInit | HttpResponseType | undefined;
    try {
      result = (await fn.handler(request, invocationContext(fn.name, 'httpTrigger'))) ?? undefined;
    } catch (error) {
      console.error(`[${fn.name}] the function threw:`, error);
      res.writeHead(500).end();
      return;
    }
    await writeResponse(res, result, method === 'HEAD');
  }

  return listenHttp(server, options.host, options.port);
}

async function writeResponse(
  res: ServerResponse,
  result: HttpResponseInit | HttpResponseType | undefined,
  head: boolean,
): Promise<void> {
  // The host answers a handler that returned nothing with an empty 204.
  if (result === undefined || result === null) {
    res.writeHead(204).end();
    return;
  }
  const response = result instanceof HttpResponse ? result : new HttpResponse(result as HttpResponseInit);
  const setCookies = [...response.headers.getSetCookie(), ...response.cookies.map(serializeCookie)];
  for (const [name, value] of response.headers) {
    if (name !== 'set-cookie') res.setHeader(name, value);
  }
  if (setCookies.length > 0) res.setHeader('set-cookie', setCookies);
  const body = Buffer.from(await response.arrayBuffer());
  res.statusCode = response.status;
  res.end(head ? undefined : body);
}

function serializeCookie(cookie: Cookie): string {
  const parts = [`${cookie.name}=${cookie.value}`];
  if (cookie.domain) parts.push(`Domain=${cookie.domain}`);
  if (cookie.path) parts.push(`Path=${cookie.path}`);
  if (cookie.expires !== undefined) parts.push(`Expires=${new Date(cookie.expires).toUTCString()}`);
  if (cookie.maxAge !== undefined) parts.push(`Max-Age=${Math.trunc(cookie.maxAge)}`);
  if (cookie.secure) parts.push('Secure');
  if (cookie.httpOnly) parts.push('HttpOnly');
  if (cookie.sameSite) parts.push(`SameSite=${cookie.sameSite}`);
  return parts.join('; ');
}

/** The key as Azure looks for it: the x-functions-key header, else the code query parameter. */
function carriesKey(req: IncomingMessage, url: URL, key: string): boolean {
  const header = req.headers['x-functions-key'];
  const given = (Array.isArray(header) ? header[0] : header) || url.searchParams.get('code');
  if (!given) return false;
  const [a, b] = [Buffer.from(given), Buffer.from(key)];
  return a.length === b.length && timingSafeEqual(a, b);
}

function headersOf(req: IncomingMessage): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(req.headers)) {
    if (value === undefined) continue;
    headers[name] = Array.isArray(value) ? value.join(name === 'cookie' ? '; ' : ', ') : value;
  }
  return headers;
}

/** The request body, or undefined when it is over the host's limit. */
async function readBody(req: IncomingMessage): Promise<Buffer | undefined> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) return undefined;
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

function pathOf(url: string | undefined): string {
  // The query may hold a function key (?code=) or an OAuth code: keep it out of the console.
  return (url ?? '/').split('?')[0] ?? '/';
}
