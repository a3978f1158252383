/**
 * The app's HTTP functions as functions/ registers them, served by the local Functions host (local/host/), for
 * tests that drive them with a real browser: routes, methods and auth levels come from the registration, and
 * requests and responses go through the same host as with `npm start`.
 *
 * The registry records a function file's registration when the file first loads, so a test using this must not
 * import function files itself; it gets the handlers from here.
 */
import type { HttpHandler } from '@azure/functions';
import { loadFunctionDefinitions, type HttpFunctionDefinition } from '../../local/host/functionRegistry';
import { startRunner, type Runner } from '../../local/host/runner';
import type { Env } from '../../shared/settings';

export interface ServedFunctions {
  runner: Runner;
  /** Each served function's handler as registered (before `replace` and `wrap`). */
  handlers: Record<string, HttpHandler>;
}

export async function serveFunctions(options: {
  /** The registered HTTP functions to serve, by name. */
  names: string[];
  /** Handlers to use instead of the registered ones (a stub), by function name. */
  replace?: Record<string, HttpHandler>;
  /** Wraps every served handler, e.g. to watch its responses. */
  wrap?: (handler: HttpHandler, name: string) => HttpHandler;
  /** App settings for the host, e.g. LOCAL_FUNCTION_KEY. */
  env?: Env;
  log?: (line: string) => void;
}): Promise<ServedFunctions> {
  const registered = await loadFunctionDefinitions();
  const handlers: Record<string, HttpHandler> = {};
  const definitions: HttpFunctionDefinition[] = options.names.map((name) => {
    const fn = registered.find((d): d is HttpFunctionDefinition => d.kind === 'http' && d.name === name);
    if (!fn)
      throw new Error(`No HTTP function "${name}" was registered (was its file imported before the registry could record it?)`);
    handlers[name] = fn.handler;
    const handler = options.replace?.[name] ?? fn.handler;
    return { ...fn, handler: options.wrap ? options.wrap(handler, name) : handler };
  });
  const runner = await startRunner({
    host: '127.0.0.1',
    port: 0,
    env: options.env ?? {},
    definitions,
    log: options.log ?? (() => {}),
  });
  return { runner, handlers };
}
