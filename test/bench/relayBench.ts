/**
 * The relay's benchmark: 8 device connections (nodemailer's pool over STARTTLS, logged in once each) send
 * 100 KB messages as fast as the relay answers; each answer is a `250` after the blob upload and the enqueue
 * on Azurite. The relay runs as its own process from the bundle the container ships (relay/build.mjs), so its
 * peak resident memory is its own.
 *
 *   node --import tsx test/bench/relayBench.ts [--quick]     prints progress on stderr and one JSON line
 *
 * `runRelayBench()` returns { relay_msgs_per_s, relay_p95_ms, relay_rss_mb } (and details) for test/bench/bench.ts.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { startAzurite } from '../../local/peers/azurite';
import { buildRelay, RELAY_RUNTIME } from '../../relay/build.mjs';
import { hashPassword } from '../../relay/passwordHash';
import { composeMime, deviceTransport } from '../support/relayDevice';
import { relayStorage, spawnRelayProcess, testRelayConfig } from '../support/relayHarness';

export const RELAY_TARGETS = { msgsPerS: 100, p95Ms: 150, rssMb: 150 };

export interface RelayBenchResult {
  relay_msgs_per_s: number;
  relay_p95_ms: number;
  relay_rss_mb: number;
  /** Sentences for the bench report. */
  details: string[];
}

export interface RelayBenchOptions {
  /** Messages measured (after the warm-up). Default 1500; quick 400. */
  messages?: number;
  warmup?: number;
  connections?: number;
  messageBytes?: number;
  /** An Azurite to use (its mail-outbox queue is cleared); default: a new one, stopped at the end. */
  connectionString?: string;
  progress?: (text: string) => void;
  /** How the relay process runs; default: as the Dockerfile and the systemd unit run it. */
  nodeOptions?: readonly string[];
  env?: Record<string, string>;
}

const PASSWORD = 'bench device password';
const round = (value: number, digits = 1) => Math.round(value * 10 ** digits) / 10 ** digits;

export async function runRelayBench(options: RelayBenchOptions = {}): Promise<RelayBenchResult> {
  const messages = options.messages ?? 1500;
  const warmup = options.warmup ?? 100;
  const connections = options.connections ?? 8;
  const messageBytes = options.messageBytes ?? 100 * 1024;
  const progress = options.progress ?? (() => {});
  const cleanups: Array<() => Promise<unknown>> = [];
  try {
    const azurite = options.connectionString ? undefined : await startAzurite();
    if (azurite) cleanups.push(() => azurite.stop());
    const connectionString = options.connectionString ?? azurite!.connectionString;
    const storage = relayStorage(connectionString);
    await storage.clear();

    const dir = await mkdtemp(path.join(os.tmpdir(), 'relay-bench-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const bundle = path.join(dir, 'relay.mjs');
    const bundleBytes = await buildRelay(bundle);
    progress(`relay bundle built (${round(bundleBytes / 1024 / 1024, 2)} MB); starting the relay process`);

    // The device logs in with a hash of the shipped strength: it happens once per pooled connection.
    const config = await testRelayConfig(connectionString, [], {
      health: undefined,
      listeners: { starttls: { host: '127.0.0.1', port: 0 } },
    });
    config.devices = [
      { user: 'bench', passwordHash: await hashPassword(PASSWORD), account: 'demo', allowedFrom: ['bench@contoso.test'] },
    ];
    const nodeOptions = options.nodeOptions ?? RELAY_RUNTIME.nodeOptions;
    const env = options.env ?? RELAY_RUNTIME.env;
    const relay = await spawnRelayProcess(config, { bundle, nodeOptions, env });
    cleanups.push(async () => {
      // A graceful stop, so that a --cpu-prof profile gets written; then by force.
      relay.kill('SIGTERM');
      await Promise.race([relay.exited, new Promise((resolve) => setTimeout(resolve, 5_000))]);
      await relay.stop();
    });

    const raw = await composeMime({
      from: 'bench@contoso.test',
      to: 'rcpt@fabrikam.test',
      subject: 'Relay benchmark',
      text: 'A scan.',
      // base64 grows by a third: this attachment makes the whole message about messageBytes.
      attachments: [{ filename: 'scan.pdf', content: randomBytes(Math.floor(((messageBytes - 1000) * 3) / 4)) }],
    });
    const envelope = { from: 'bench@contoso.test', to: ['rcpt@fabrikam.test'] };
    const transport = await deviceTransport({
      port: relay.port,
      user: 'bench',
      pass: PASSWORD,
      pool: true,
      maxConnections: connections,
    });
    cleanups.push(async () => transport.close());

    const send = async (n: number, latencies?: number[]) => {
      let next = 0;
      let errors = 0;
      let firstError: string | undefined;
      await Promise.all(
        Array.from({ length: connections }, async () => {
          while (next < n) {
            next++;
            const started = performance.now();
            try {
              const info = await transport.sendMail({ envelope, raw });
              if (!/^250 2\.0\.0 queued as /.test(info.response)) throw new Error(info.response);
              latencies?.push(performance.now() - started);
            } catch (error) {
              errors++;
              firstError ??= (error as Error).message;
            }
          }
        }),
      );
      return { errors, firstError };
    };

    progress(`warm-up: ${warmup} messages of ${raw.length} bytes over ${connections} connections`);
    await send(warmup);
    const pids = { relay: relay.pid, bench: process.pid, ...(azurite ? { azurite: azurite.pid } : {}) };
    const cpuBefore = await cpuOf(pids);
    const latencies: number[] = [];
    progress(`measuring: ${messages} messages`);
    const started = performance.now();
    const { errors, firstError } = await send(messages, latencies);
    const seconds = (performance.now() - started) / 1000;
    const cpuAfter = await cpuOf(pids);
    const memory = await memoryOf(relay.pid);
    const queued = await storage.count();

    latencies.sort((a, b) => a - b);
    const percentile = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))] ?? NaN;
    const rate = latencies.length / seconds;
    const details = [
      `relay: ${latencies.length} messages of ${raw.length} bytes in ${round(seconds, 2)} s over ${connections} STARTTLS connections; latency p50 ${round(percentile(0.5))} ms, p95 ${round(percentile(0.95))} ms, max ${round(latencies.at(-1) ?? NaN)} ms; ${errors} errors${firstError ? ` (first: ${firstError})` : ''}`,
      `relay: ${queued} queue messages on mail-outbox for ${warmup + messages} sent (warm-up included)`,
      `relay process (bundle ${round(bundleBytes / 1024 / 1024, 2)} MB, node ${[...nodeOptions].join(' ') || '(no options)'}${Object.entries(
        env,
      )
        .map(([k, v]) => `, ${k}=${v}`)
        .join('')}): RSS peak ${round(memory.peakMb)} MB, at the end ${round(memory.nowMb)} MB`,
      `CPU per message: ${Object.keys(pids)
        .map((name) => {
          const used = (cpuAfter[name] ?? NaN) - (cpuBefore[name] ?? NaN);
          return `${name} ${round((used * 1000) / latencies.length, 2)} ms (${round((used / seconds) * 100, 0)}% of a core)`;
        })
        .join(', ')}; load average ${os.loadavg()[0]!.toFixed(1)} on ${os.cpus().length} cores`,
    ];
    return { relay_msgs_per_s: round(rate), relay_p95_ms: round(percentile(0.95)), relay_rss_mb: round(memory.peakMb), details };
  } finally {
    for (const cleanup of cleanups.reverse()) await cleanup().catch(() => undefined);
  }
}

/** Peak and current resident memory of a process, from /proc (Linux). */
async function memoryOf(pid: number): Promise<{ peakMb: number; nowMb: number }> {
  try {
    const status = await readFile(`/proc/${pid}/status`, 'utf8');
    const kb = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
    return { peakMb: kb('VmHWM') / 1024, nowMb: kb('VmRSS') / 1024 };
  } catch {
    return { peakMb: NaN, nowMb: NaN };
  }
}

/** CPU seconds (user + system) each process has used so far, from /proc (Linux; clock ticks of 1/100 s). */
async function cpuOf(pids: Record<string, number>): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const [name, pid] of Object.entries(pids)) {
    try {
      const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      out[name] = (Number(fields[11]) + Number(fields[12])) / 100;
    } catch {
      // not Linux, or gone
    }
  }
  return out;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const quick = process.argv.includes('--quick');
  const plain = process.argv.includes('--plain-node');
  const result = await runRelayBench({
    ...(quick ? { messages: 400, warmup: 50 } : {}),
    ...(plain ? { nodeOptions: [], env: {} } : {}),
    progress: (text) => process.stderr.write(`[relay bench] ${text}\n`),
  });
  for (const line of result.details) process.stderr.write(`[relay bench] ${line}\n`);
  const { details: _details, ...figures } = result;
  process.stdout.write(`${JSON.stringify(figures)}\n`);
}
