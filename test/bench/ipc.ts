/**
 * Child processes for the benchmark (the SMTP sink, the budget workers): `node --import tsx <script>` with an
 * IPC channel, a request/reply protocol on it, and a child side that exits as soon as its parent is gone.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));

interface Envelope {
  rid?: number;
  type: string;
  [key: string]: unknown;
}

export interface BenchChild {
  readonly pid: number;
  readonly process: ChildProcess;
  /** Sends `{ type, ...body }` and resolves with the child's answer to it. */
  request<T>(type: string, body?: Record<string, unknown>, timeoutMs?: number): Promise<T>;
  /** Messages the child sends on its own (not answers). */
  onEvent(listener: (message: Envelope) => void): void;
  /** Asks the child to stop, then kills it if it has not exited within `graceMs`. */
  stop(graceMs?: number): Promise<void>;
}

const live = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of live) kill(child);
});

export function spawnChild(script: string, env: Record<string, string> = {}): BenchChild {
  const child = spawn(process.execPath, ['--import', 'tsx', script], {
    cwd: ROOT,
    stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
    env: { ...process.env, ...env },
  });
  live.add(child);
  const exited = new Promise<void>((resolve) =>
    child.once('exit', () => {
      live.delete(child);
      for (const [, pending] of waiting)
        pending.reject(new Error(`${script} exited (code ${child.exitCode}, signal ${child.signalCode})`));
      waiting.clear();
      resolve();
    }),
  );
  const waiting = new Map<number, { resolve(value: unknown): void; reject(error: Error): void }>();
  const listeners: Array<(message: Envelope) => void> = [];
  let nextId = 1;
  child.on('message', (message: Envelope) => {
    if (message.rid !== undefined && waiting.has(message.rid)) {
      const pending = waiting.get(message.rid)!;
      waiting.delete(message.rid);
      if (message.type === 'error') pending.reject(new Error(`${script}: ${String(message.message)}`));
      else pending.resolve(message.result);
      return;
    }
    for (const listener of listeners) listener(message);
  });
  child.on('error', () => {});

  return {
    get pid() {
      return child.pid ?? -1;
    },
    process: child,
    request<T>(type: string, body: Record<string, unknown> = {}, timeoutMs = 120_000) {
      return new Promise<T>((resolve, reject) => {
        if (child.exitCode !== null || child.signalCode !== null || !child.connected) {
          reject(new Error(`${script} is not running`));
          return;
        }
        const rid = nextId++;
        const timer = setTimeout(() => {
          waiting.delete(rid);
          reject(new Error(`${script}: no answer to "${type}" within ${timeoutMs} ms`));
        }, timeoutMs);
        waiting.set(rid, {
          resolve: (value) => {
            clearTimeout(timer);
            resolve(value as T);
          },
          reject: (error) => {
            clearTimeout(timer);
            reject(error);
          },
        });
        child.send({ ...body, rid, type });
      });
    },
    onEvent(listener) {
      listeners.push(listener);
    },
    async stop(graceMs = 3_000) {
      if (child.exitCode !== null || child.signalCode !== null) return;
      if (child.connected) child.disconnect(); // the child side exits on 'disconnect'
      const timer = setTimeout(() => kill(child), graceMs);
      await exited;
      clearTimeout(timer);
    },
  };
}

function kill(child: ChildProcess): void {
  if (child.exitCode !== null || child.signalCode !== null) return;
  try {
    child.kill('SIGKILL');
  } catch {
    // already gone
  }
}

/**
 * The child side: answers requests with `handlers[type](message)`. When the parent goes away (or disconnects
 * to ask for a stop) `onStop` runs and the process exits.
 */
export function serve(
  handlers: Record<string, (message: Envelope) => unknown>,
  onStop: () => Promise<void> | void = () => {},
): void {
  if (!process.send) throw new Error('serve(): this process has no IPC channel; start it with spawnChild()');
  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    const hard = setTimeout(() => process.exit(0), 3_000);
    hard.unref();
    try {
      await onStop();
    } finally {
      process.exit(0);
    }
  };
  process.on('disconnect', () => void stop());
  process.on('message', (message: Envelope) => {
    const handler = handlers[message.type];
    void (async () => {
      try {
        if (!handler) throw new Error(`unknown request "${message.type}"`);
        const result = await handler(message);
        if (process.connected) process.send!({ rid: message.rid, type: 'result', result });
      } catch (error) {
        if (process.connected)
          process.send!({ rid: message.rid, type: 'error', message: (error as Error).stack ?? String(error) });
      }
    })();
  });
}

/** Samples this process's resident set size; `peakMb()` is the highest value seen, `atPeak()` what it was made of. */
export function rssSampler(everyMs = 50): {
  peakMb(): number;
  atPeak(): { heapTotalMb: number; heapUsedMb: number; externalMb: number };
  stop(): void;
} {
  let peak = 0;
  let atPeak = { heapTotalMb: 0, heapUsedMb: 0, externalMb: 0 };
  const sample = () => {
    const rss = process.memoryUsage.rss();
    if (rss <= peak) return;
    peak = rss;
    const usage = process.memoryUsage();
    atPeak = { heapTotalMb: usage.heapTotal / MB, heapUsedMb: usage.heapUsed / MB, externalMb: usage.external / MB };
  };
  sample();
  const timer = setInterval(sample, everyMs);
  timer.unref();
  return {
    peakMb: () => {
      sample();
      return peak / MB;
    },
    atPeak: () => atPeak,
    stop: () => clearInterval(timer),
  };
}

const MB = 1024 * 1024;
