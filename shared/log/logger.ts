import { redact } from './redact';

export type LogLevel = 'info' | 'warn' | 'error';
export type LogFields = Record<string, unknown>;

/**
 * Structured logs: one JSON object per line (`{"event":"mail.sent","account":…}`), redacted before it is
 * written. In Azure the lines go through the invocation context, so they reach Application Insights as traces
 * that KQL can `parse_json`.
 */
export interface Logger {
  info(event: string, fields?: LogFields): void;
  warn(event: string, fields?: LogFields): void;
  error(event: string, fields?: LogFields): void;
}

export type LogWriter = (level: LogLevel, line: string) => void;

/** Every line written anywhere also goes to these observers (tests use one to search logs for secrets). */
const observers = new Set<LogWriter>();
export function observeLogs(observer: LogWriter): () => void {
  observers.add(observer);
  return () => observers.delete(observer);
}

/** `observed: false` for a second destination of lines another logger already writes (observers see each once). */
export function createLogger(write: LogWriter, base: LogFields = {}, options: { observed?: boolean } = {}): Logger {
  const observed = options.observed ?? true;
  const emit = (level: LogLevel, event: string, fields?: LogFields) => {
    const line = JSON.stringify(redact({ event, ...base, ...fields }));
    write(level, line);
    if (observed) for (const observer of observers) observer(level, line);
  };
  return {
    info: (event, fields) => emit('info', event, fields),
    warn: (event, fields) => emit('warn', event, fields),
    error: (event, fields) => emit('error', event, fields),
  };
}

/** Each call goes to every one of them, in order (the console and an export, say). */
export function teeLogger(...loggers: Logger[]): Logger {
  return {
    info: (event, fields) => loggers.forEach((logger) => logger.info(event, fields)),
    warn: (event, fields) => loggers.forEach((logger) => logger.warn(event, fields)),
    error: (event, fields) => loggers.forEach((logger) => logger.error(event, fields)),
  };
}

export const consoleLogger: Logger = createLogger((level, line) => {
  if (level === 'error') console.error(line);
  else if (level === 'warn') console.warn(line);
  else console.log(line);
});

export const silentLogger: Logger = createLogger(() => {});

/** Adapts the Functions InvocationContext (log/warn/error) to our Logger. */
export function contextLogger(
  context: { log(...args: unknown[]): void; warn(...args: unknown[]): void; error(...args: unknown[]): void },
  base: LogFields = {},
): Logger {
  return createLogger((level, line) => {
    if (level === 'error') context.error(line);
    else if (level === 'warn') context.warn(line);
    else context.log(line);
  }, base);
}
