/**
 * The function definitions exactly as `functions/` registers them with `@azure/functions`: the local runner
 * serves these, so routes, auth levels, queue names and schedules have one source of truth.
 *
 * Outside the Functions host the package runs in "test mode" and drops every registration. Before the function
 * files are imported, the registration methods of its `app` object (the very object the files import) are
 * replaced by recorders.
 */
import functions from '@azure/functions';
import type { FunctionHandler, HttpHandler, HttpMethod, StorageQueueHandler, TimerHandler } from '@azure/functions';

export type AuthLevel = 'anonymous' | 'function' | 'admin';

interface DefinitionBase {
  name: string;
  /** The file that made the registration (a file: URL), when the stack tells. */
  source?: string;
}

export interface HttpFunctionDefinition extends DefinitionBase {
  kind: 'http';
  /** As registered, without the /api prefix; may hold `{param}`, `{param?}`, `{param:constraint}`, `{*rest}`. */
  route: string;
  methods: HttpMethod[];
  authLevel: AuthLevel;
  handler: HttpHandler;
}

export interface QueueFunctionDefinition extends DefinitionBase {
  kind: 'storageQueue';
  /** May be an app setting reference such as `%OUTBOX_QUEUE%`. */
  queueName: string;
  /** App setting (prefix) of the storage connection. */
  connection: string;
  handler: StorageQueueHandler;
}

export interface TimerFunctionDefinition extends DefinitionBase {
  kind: 'timer';
  /** NCRONTAB (six fields) or an app setting reference such as `%REFRESH_SCHEDULE%`. */
  schedule: string;
  runOnStartup: boolean;
  handler: TimerHandler;
}

/** A trigger the local runner does not serve; it is listed so that nobody wonders where it went. */
export interface UnsupportedFunctionDefinition extends DefinitionBase {
  kind: 'unsupported';
  trigger: string;
  handler: FunctionHandler;
}

export type FunctionDefinition =
  HttpFunctionDefinition | QueueFunctionDefinition | TimerFunctionDefinition | UnsupportedFunctionDefinition;

type Registrar = (name: string, options: unknown) => void;
type AppObject = Record<string, unknown>;

const HTTP_SHORTHANDS: Record<string, HttpMethod> = {
  get: 'GET',
  put: 'PUT',
  post: 'POST',
  patch: 'PATCH',
  deleteRequest: 'DELETE',
};
/** Members of `app` that register nothing. */
const NOT_REGISTRARS = new Set(['setup', 'hook']);

export const FUNCTIONS_ENTRY = new URL('../../functions/index.ts', import.meta.url);

/**
 * Replaces every registration method of `app` with a recorder and returns the (live) list they fill.
 * Call before the function files are imported; ESM caches modules, so a file registers once per process.
 */
export function recordRegistrations(app: AppObject = functions.app as unknown as AppObject): FunctionDefinition[] {
  const definitions: FunctionDefinition[] = [];
  const add = (definition: FunctionDefinition) => {
    assertRegistrable(definition, definitions);
    definitions.push(definition);
  };
  for (const [member, value] of Object.entries(app)) {
    if (typeof value !== 'function' || NOT_REGISTRARS.has(member)) continue;
    const method = HTTP_SHORTHANDS[member];
    const recorder: Registrar = (name, options) => {
      const source = callerFile(recorder);
      const opts = typeof options === 'function' ? { handler: options } : (options as Record<string, unknown>);
      if (member === 'http' || method) add(httpDefinition(name, method ? { ...opts, methods: [method] } : opts, source));
      else if (member === 'storageQueue') add(queueDefinition(name, opts, source));
      else if (member === 'timer') add(timerDefinition(name, opts, source));
      else add({ kind: 'unsupported', name, trigger: member, handler: opts.handler as FunctionHandler, ...withSource(source) });
    };
    app[member] = recorder;
  }
  return definitions;
}

/**
 * What the host refuses when it indexes the functions (ScriptHost.ValidateFunction / ValidateHttpFunction): two
 * functions of one name, an HTTP route in its reserved space (starting with "admin" or "runtime", whatever
 * follows), and two HTTP functions with the same route and a method in common. Throws with the reason.
 */
export function assertRegistrable(definition: FunctionDefinition, earlier: readonly FunctionDefinition[]): void {
  if (earlier.some((d) => d.name.toLowerCase() === definition.name.toLowerCase()))
    throw new Error(`Two functions are named "${definition.name}"; the Functions host refuses that too.`);
  if (definition.kind !== 'http') return;
  const route = definition.route.toLowerCase();
  if (route.startsWith('admin') || route.startsWith('runtime'))
    throw new Error(
      `Function ${definition.name}: the route "${definition.route}" conflicts with the host's built-in routes ` +
        '(a route may not start with "admin" or "runtime"); Azure refuses it at start-up.',
    );
  const clash = earlier.find(
    (d) => d.kind === 'http' && d.route.toLowerCase() === route && d.methods.some((m) => definition.methods.includes(m)),
  );
  if (clash)
    throw new Error(
      `Function ${definition.name}: the route "${definition.route}" conflicts with the route of function ${clash.name}.`,
    );
}

let loaded: Promise<FunctionDefinition[]> | undefined;

/** Imports the bundle's entry (which imports every function file) once, recording what it registers. */
export function loadFunctionDefinitions(entry: URL = FUNCTIONS_ENTRY): Promise<FunctionDefinition[]> {
  loaded ??= (async () => {
    const definitions = recordRegistrations();
    await import(entry.href);
    return definitions;
  })();
  return loaded;
}

function httpDefinition(name: string, opts: Record<string, unknown>, source: string | undefined): HttpFunctionDefinition {
  const methods = (opts.methods as string[] | undefined) ?? ['GET', 'POST'];
  return {
    kind: 'http',
    name,
    // The host takes the function's name when the route is missing or blank.
    route: (typeof opts.route === 'string' && opts.route.trim() ? opts.route : name).trim().replace(/^\/+|\/+$/g, ''),
    methods: methods.map((m) => m.toUpperCase() as HttpMethod),
    authLevel: (opts.authLevel as AuthLevel | undefined) ?? 'anonymous',
    handler: opts.handler as HttpHandler,
    ...withSource(source),
  };
}

function queueDefinition(name: string, opts: Record<string, unknown>, source: string | undefined): QueueFunctionDefinition {
  return {
    kind: 'storageQueue',
    name,
    queueName: String(opts.queueName),
    connection: String(opts.connection ?? 'AzureWebJobsStorage'),
    handler: opts.handler as StorageQueueHandler,
    ...withSource(source),
  };
}

function timerDefinition(name: string, opts: Record<string, unknown>, source: string | undefined): TimerFunctionDefinition {
  return {
    kind: 'timer',
    name,
    schedule: String(opts.schedule),
    runOnStartup: opts.runOnStartup === true,
    handler: opts.handler as TimerHandler,
    ...withSource(source),
  };
}

function withSource(source: string | undefined): { source?: string } {
  return source ? { source } : {};
}

/** The file of the code that called `fn`, from V8's structured stack trace. */
function callerFile(fn: (...args: never[]) => unknown): string | undefined {
  const original = Error.prepareStackTrace;
  try {
    Error.prepareStackTrace = (_error, frames) => frames;
    const holder: { stack?: NodeJS.CallSite[] } = {};
    Error.captureStackTrace(holder, fn);
    const file = holder.stack?.[0]?.getFileName();
    return file ? (file.startsWith('file:') ? file : `file://${file}`) : undefined;
  } finally {
    Error.prepareStackTrace = original;
  }
}
