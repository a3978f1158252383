/**
 * `npm run bench [-- --quick] [-- --starttls] [-- --stages] [-- --only=raw,core,burst,handler,budget,backlog,apprss,race,relay,graph,bundle,p7,accounts]`
 *
 * Throughput, limits, memory and bundle of the send path on this machine, everything on loopback:
 * Azurite (child process), the XOAUTH2 budget sink (child process, test/support/budgetSmtp.ts) and, for the
 * shared-budget run, three worker processes (test/bench/budgetWorker.ts). Prints a table (what was measured,
 * value, target) and, as the last line, one JSON object with the headline numbers.
 *
 *   --quick      smaller runs, for CI smoke tests (well under a minute)
 *   --starttls   raw, core, burst and handler over STARTTLS instead of plain SMTP
 *   --stages     time each stage of the handler (ledger, budget, SMTP, queues) and print where time goes
 *   --only=...   run only some parts (the JSON then has null for the others)
 *   --what-if=a,b    experiments that stand in for proposed changes of shared/ (the output says so):
 *                    no-ledger-get (create-first claim), no-budget-io (budget reserved locally), no-results
 *                    (no result events) for the handler; budget-in-lane, guard=<ms> for the shared budget
 *   --profile[=dir]  CPU profiles of the bench process, Azurite and the sink during the handler run, summarized
 *                    in the output (files in dir, default a new temporary directory)
 */
import { spawn } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { Session } from 'node:inspector/promises';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import nodemailer from 'nodemailer';
import type SMTPPool from 'nodemailer/lib/smtp-pool';
import { startAzurite, type Azurite } from '../../local/peers/azurite';
import { parseAccounts, type Account } from '../../shared/config';
import { composeMail } from '../../shared/delivery/composeMail';
import { DEFAULT_POLICY } from '../../shared/delivery/policy';
import { mailboxKey } from '../../shared/delivery/senderPool';
import { ConnectionSlots } from '../../shared/limits/connectionSlots';
import { jsonMailMessageSchema, type JsonMailMessage } from '../../shared/message/messageSchema';
import { QUEUES, TABLES } from '../../shared/names';
import { AccountSender } from '../../shared/smtp/accountSender';
import { createStorageClients, type StorageClients } from '../../shared/storage/storageClients';
import { encodeQueueJson } from '../../shared/message/queueJson';
import { sendMail } from '../../functions/sendMail';
import { InvocationContext } from '../support/azureFunctions';
import { ensureTestCaFiles, loadTestTls } from '../support/certs';
import { startSendHarness, testAccount, tokenFor, type SendHarness } from '../support/sendHarness';
import type { WorkerStats } from './budgetWorker';
import { ROOT, rssSampler, spawnChild, type BenchChild } from './ipc';
import { sleep, startPump, StageTimings } from './pump';
import { formatSummary, summarizeProfile } from './profileSummary';
import type { SinkStats } from './sinkProcess';
import { measureBacklog } from './backlog';
import { measureAppRss } from './appRss';
import { countStorageOps } from './storageOps';
import { REFRESH_TARGETS, runRefreshBench } from './refreshBench';
import { RELAY_TARGETS, runRelayBench } from './relayBench';
import { FileSecretStore } from '../../shared/storage/fileSecretStore';
import { measureRace, runRaceProperty } from './race';
import type { GraphBenchResult } from './graphBench';
import { ACCOUNTS_PAGE_TARGET_MS, measureAccountsPage } from './accountsPage';

// ---- settings ------------------------------------------------------------------------------------------

const argv = process.argv.slice(2);
const QUICK = argv.includes('--quick');
const SECURITY: 'plain' | 'starttls' = argv.includes('--starttls') ? 'starttls' : 'plain';
const STAGES = argv.includes('--stages');
const ONLY = new Set(
  (
    argv.find((a) => a.startsWith('--only='))?.slice('--only='.length) ??
    'raw,core,burst,handler,budget,backlog,apprss,race,relay,graph,bundle,p7,accounts'
  )
    .split(',')
    .filter(Boolean),
);
const WHAT_IF = (argv.find((a) => a.startsWith('--what-if='))?.slice('--what-if='.length) ?? '').split(',').filter(Boolean);
const ORIGINAL_NODE_OPTIONS = process.env.NODE_OPTIONS;
const PROFILE_ARG = argv.find((a) => a === '--profile' || a.startsWith('--profile='));
const PROFILE_DIR = PROFILE_ARG
  ? PROFILE_ARG.includes('=')
    ? path.resolve(PROFILE_ARG.slice('--profile='.length))
    : await mkdtemp(path.join(os.tmpdir(), 'outbox-bench-profile-'))
  : undefined;
if (PROFILE_DIR) {
  // Children (Azurite, the sink) start a profile on the first SIGUSR2 and write it on the second.
  process.env.BENCH_PROFILE_DIR = PROFILE_DIR;
  const preload = pathToFileURL(path.join(ROOT, 'test/bench/cpuProfile.mjs')).href;
  process.env.NODE_OPTIONS = `${process.env.NODE_OPTIONS ?? ''} --import=${preload}`.trim();
}
if (ONLY.has('raw') !== ONLY.has('core')) ONLY.add('raw').add('core'); // one is measured against the other

const CFG = QUICK
  ? { n: 300, rounds: 3, warmup: 100, m: 300, perWindow: 40, windowMs: 2_000, windows: 3, loads: 3, backlog: 400, appM: 300 }
  : {
      n: 2_000,
      rounds: 3,
      warmup: 200,
      m: 1_500,
      perWindow: 100,
      windowMs: 5_000,
      windows: 3,
      loads: 5,
      backlog: 1_000,
      appM: 1_500,
    };
/** p7: accounts refreshed back to back (issue 20: 10,000 in the full run). */
const P7_ACCOUNTS = QUICK ? 500 : 10_000;
// The backlog run, time-compressed: 600 a minute on a 6 s window (60 per window), B every second.
const BACKLOG = { perMinute: 600, windowMs: 6_000, bEveryMs: 1_000, outOfOrderPlaces: 100 };
const CONNECTIONS = 3; // raw and core: SMTP connections
const CLIENT_CONCURRENCY = 64; // raw and core: sends in flight
const BURST_CONNECTIONS = 4; // burst: all N sends started at once over this many connections
const HANDLER_CONCURRENCY = 16; // handler and budget workers: invocations in flight (host batchSize 16)
const HANDLER_CONNECTIONS = 4;
const WORKERS = 3;
const DURATION_MS = CFG.windowMs * CFG.windows;
const ALLOWED = (CFG.perWindow * DURATION_MS) / CFG.windowMs;

const TARGETS = {
  coreRatio: 0.9,
  burstRatio: 0.9,
  handler: 200,
  budgetRatio: 0.95,
  throttleReplies: 0,
  rssMb: 200,
  bundleBytes: 2.5 * 1024 * 1024,
  bundleLoadMs: 300,
};

const progress = (text: string) => process.stderr.write(`[bench] ${text}\n`);

// ---- cleanup -------------------------------------------------------------------------------------------

const cleanups: Array<() => Promise<unknown> | unknown> = [];
let cleaning: Promise<void> | undefined;
function cleanup(): Promise<void> {
  return (cleaning ??= (async () => {
    for (const step of cleanups.splice(0).reverse()) {
      try {
        await step();
      } catch (error) {
        progress(`cleanup: ${(error as Error).message}`);
      }
    }
  })());
}
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    progress(`${signal}: stopping`);
    void cleanup().finally(() => process.exit(130));
  });
}

// ---- helpers -------------------------------------------------------------------------------------------

async function runLimited(
  n: number,
  limit: number,
  fn: (i: number) => Promise<unknown>,
): Promise<{ errors: number; firstError?: string }> {
  let next = 0;
  let errors = 0;
  let firstError: string | undefined;
  await Promise.all(
    Array.from({ length: Math.min(limit, n) }, async () => {
      while (next < n) {
        const i = next++;
        try {
          await fn(i);
        } catch (error) {
          errors++;
          firstError ??= (error as Error).message;
        }
      }
    }),
  );
  return { errors, ...(firstError ? { firstError } : {}) };
}

function once<T>(fn: () => Promise<T>): () => Promise<T> {
  let promise: Promise<T> | undefined;
  return () => (promise ??= fn());
}

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
};
const round = (value: number, digits = 1) => Math.round(value * 10 ** digits) / 10 ** digits;

/** CPU seconds (user + system) a process has used so far, from /proc (Linux); undefined elsewhere. */
async function cpuSeconds(pid: number): Promise<number | undefined> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return undefined;
  }
}

/** CPU each process used between start and stop: share of one core, and CPU milliseconds. */
async function cpuMeter(pids: Record<string, number>) {
  const before = Object.fromEntries(
    await Promise.all(Object.entries(pids).map(async ([name, pid]) => [name, await cpuSeconds(pid)] as const)),
  );
  const started = performance.now();
  return async () => {
    const wall = (performance.now() - started) / 1000;
    const out: Record<string, { percent: number; ms: number }> = {};
    for (const [name, pid] of Object.entries(pids)) {
      const after = await cpuSeconds(pid);
      const b = before[name];
      if (after !== undefined && b !== undefined)
        out[name] = { percent: round(((after - b) / wall) * 100, 0), ms: (after - b) * 1000 };
    }
    return out;
  };
}

const TEXT = 'Hello,\n\nthis is a benchmark message of the outbox. It is small, plain text, one recipient.\n\nRegards\n';
const message = (i: number): JsonMailMessage =>
  jsonMailMessageSchema.parse({ to: ['rcpt@example.com'], subject: `Benchmark message ${i}`, text: TEXT });

// ---- the parts -----------------------------------------------------------------------------------------

interface Sink {
  child: BenchChild;
  start(options: Record<string, unknown>): Promise<{ port: number; host: string }>;
  stats(query?: { from?: number; to?: number; windowMs?: number }): Promise<SinkStats>;
}

interface RunResult {
  rate: number;
  /** CPU time of this process per message (ms): less sensitive than rates to other load on the machine. */
  cpuMsPerMsg: number;
  errors: number;
  busy: number;
  firstError?: string;
}

const cpuMs = (usage: NodeJS.CpuUsage) => (usage.user + usage.system) / 1000;

async function rawRun(port: number, ca: string | undefined, n: number, user: string): Promise<RunResult> {
  const transport = nodemailer.createTransport({
    pool: true,
    maxConnections: CONNECTIONS,
    host: '127.0.0.1',
    port,
    secure: false,
    ignoreTLS: SECURITY === 'plain',
    requireTLS: SECURITY === 'starttls',
    tls: { minVersion: 'TLSv1.2', ...(ca ? { ca } : {}) },
    auth: { type: 'OAuth2', user, accessToken: tokenFor('bench') },
    logger: false,
    debug: false,
  } as SMTPPool.Options);
  const started = performance.now();
  const cpu = process.cpuUsage();
  const result = await runLimited(n, CLIENT_CONCURRENCY, (i) =>
    transport.sendMail({ from: user, to: 'rcpt@example.com', subject: `Benchmark message ${i}`, text: TEXT }),
  );
  const ms = performance.now() - started;
  const used = cpuMs(process.cpuUsage(cpu));
  transport.close();
  return { rate: ((n - result.errors) / ms) * 1000, cpuMsPerMsg: used / n, busy: 0, ...result };
}

async function coreRun(storage: StorageClients, account: Account, n: number, tag: string): Promise<RunResult> {
  const slots = new ConnectionSlots(storage.table(TABLES.leases), account.id, () => CONNECTIONS, `bench-${process.pid}-${tag}`);
  const sender = new AccountSender(account, slots, {
    idleMs: DEFAULT_POLICY.connectionIdleMs,
    timeouts: DEFAULT_POLICY.smtpTimeouts,
  });
  const token = { accessToken: tokenFor(account.id), expiresAt: Date.now() + 3_600_000 };
  const messages = Array.from({ length: n }, (_, i) => message(i));
  let busy = 0;
  const started = performance.now();
  const cpu = process.cpuUsage();
  const result = await runLimited(n, CLIENT_CONCURRENCY, async (i) => {
    const composed = composeMail(account, `core-${tag}-${i}`, messages[i]!, []);
    const lane = await sender.acquire(DEFAULT_POLICY.maxInProcessWaitMs);
    if (!lane) return void busy++;
    try {
      await lane.send(composed.options, token);
    } finally {
      lane.release();
    }
  });
  const ms = performance.now() - started;
  const used = cpuMs(process.cpuUsage(cpu));
  await sender.close();
  return { rate: ((n - result.errors - busy) / ms) * 1000, cpuMsPerMsg: used / n, busy, ...result };
}

/** Raw pooled nodemailer against the product's sender, the same messages on the same sink, in alternating rounds. */
interface Comparison {
  accountId: string;
  connections: number;
  raw: (port: number, ca: string | undefined, n: number, user: string) => Promise<RunResult>;
  core: (storage: StorageClients, account: Account, n: number, tag: string) => Promise<RunResult>;
  /** How the round is named in notes and progress ('' or 'burst'). */
  label: string;
  /** What `busy` means for the core side, for the notes. */
  busyMeans: string;
}

async function compareRawCore(sink: Sink, storage: StorageClients, c: Comparison) {
  const { port } = await sink.start({ security: SECURITY });
  const tls = SECURITY === 'starttls' ? await loadTestTls() : undefined;
  const { caPath } = await ensureTestCaFiles();
  const [account] = parseAccounts([
    testAccount({
      id: c.accountId,
      port,
      smtp: { security: SECURITY, caFile: caPath },
      rateLimit: { concurrentConnections: c.connections },
    }),
  ]);
  const user = account!.user;
  // Warm-up (not counted): JIT, first connections, the leases table.
  await c.raw(port, tls?.caPem, CFG.warmup, user);
  await c.core(storage, account!, CFG.warmup, 'warmup');
  const raw: RunResult[] = [];
  const core: RunResult[] = [];
  const notes: string[] = [];
  const named = c.label ? `${c.label} ` : '';
  for (let r = 0; r < CFG.rounds; r++) {
    // Alternate which goes first, so that a drift in the machine's other load does not favour one of them.
    const runRaw = () => c.raw(port, tls?.caPem, CFG.n, user);
    const runCore = () => c.core(storage, account!, CFG.n, `r${r}`);
    let a: RunResult;
    let b: RunResult;
    if (r % 2 === 0) {
      a = await runRaw();
      b = await runCore();
    } else {
      b = await runCore();
      a = await runRaw();
    }
    raw.push(a);
    core.push(b);
    if (a.errors) notes.push(`raw ${named}round ${r}: ${a.errors} errors (${a.firstError})`);
    if (b.errors || b.busy)
      notes.push(`core ${named}round ${r}: ${b.errors} errors, ${b.busy} ${c.busyMeans} (${b.firstError ?? ''})`);
    progress(
      `${c.label ? `${c.label}: ` : ''}raw ${round(a.rate)} msg/s, core ${round(b.rate)} msg/s (round ${r + 1}/${CFG.rounds})`,
    );
  }
  return {
    raw: median(raw.map((x) => x.rate)),
    core: median(core.map((x) => x.rate)),
    rawCpu: median(raw.map((x) => x.cpuMsPerMsg)),
    coreCpu: median(core.map((x) => x.cpuMsPerMsg)),
    rawRounds: raw.map((x) => x.rate),
    coreRounds: core.map((x) => x.rate),
    notes,
  };
}

const measureRawCore = (sink: Sink, storage: StorageClients) =>
  compareRawCore(sink, storage, {
    accountId: 'bench',
    connections: CONNECTIONS,
    raw: rawRun,
    core: coreRun,
    label: '',
    busyMeans: 'no-lane',
  });

/** Starts every one of `n` sends at once (a burst) and waits for all of them. */
async function burst(
  n: number,
  fn: (i: number) => Promise<boolean>,
): Promise<{ ms: number; cpuMsPerMsg: number; errors: number; busy: number; firstError?: string }> {
  let errors = 0;
  let busy = 0;
  let firstError: string | undefined;
  const started = performance.now();
  const cpu = process.cpuUsage();
  await Promise.all(
    Array.from({ length: n }, (_, i) =>
      fn(i).then(
        (ok) => {
          if (!ok) busy++;
        },
        (error: unknown) => {
          errors++;
          firstError ??= (error as Error).message;
        },
      ),
    ),
  );
  const ms = performance.now() - started;
  return { ms, cpuMsPerMsg: cpuMs(process.cpuUsage(cpu)) / n, errors, busy, ...(firstError ? { firstError } : {}) };
}

async function rawBurstRun(port: number, ca: string | undefined, n: number, user: string): Promise<RunResult> {
  const transport = nodemailer.createTransport({
    pool: true,
    maxConnections: BURST_CONNECTIONS,
    host: '127.0.0.1',
    port,
    secure: false,
    ignoreTLS: SECURITY === 'plain',
    requireTLS: SECURITY === 'starttls',
    tls: { minVersion: 'TLSv1.2', ...(ca ? { ca } : {}) },
    auth: { type: 'OAuth2', user, accessToken: tokenFor('bench') },
    logger: false,
    debug: false,
  } as SMTPPool.Options);
  const result = await burst(n, async (i) => {
    await transport.sendMail({ from: user, to: 'rcpt@example.com', subject: `Benchmark message ${i}`, text: TEXT });
    return true;
  });
  transport.close();
  return { rate: ((n - result.errors) / result.ms) * 1000, ...result };
}

/** AccountSender built as SenderPool builds it: the mailbox's connection slots in table `leases`, the policy's timeouts. */
async function coreBurstRun(storage: StorageClients, account: Account, n: number, tag: string): Promise<RunResult> {
  const slots = new ConnectionSlots(
    storage.table(TABLES.leases),
    mailboxKey(account),
    () => account.limits.concurrentConnections,
    `bench-${process.pid}-burst-${tag}`,
  );
  const sender = new AccountSender(account, slots, {
    idleMs: DEFAULT_POLICY.connectionIdleMs,
    timeouts: DEFAULT_POLICY.smtpTimeouts,
  });
  const token = { accessToken: tokenFor(account.id), expiresAt: Date.now() + 3_600_000 };
  const messages = Array.from({ length: n }, (_, i) => message(i));
  const result = await burst(n, async (i) => {
    const composed = composeMail(account, `burst-${tag}-${i}`, messages[i]!, []);
    const lane = await sender.acquire(DEFAULT_POLICY.maxInProcessWaitMs);
    if (!lane) return false;
    try {
      await lane.send(composed.options, token);
      return true;
    } finally {
      lane.release();
    }
  });
  await sender.close();
  return { rate: ((n - result.errors - result.busy) / result.ms) * 1000, ...result };
}

const measureBurst = (sink: Sink, storage: StorageClients) =>
  compareRawCore(sink, storage, {
    accountId: 'burst',
    connections: BURST_CONNECTIONS,
    raw: rawBurstRun,
    core: coreBurstRun,
    label: 'burst',
    busyMeans: `found no connection within ${DEFAULT_POLICY.maxInProcessWaitMs} ms`,
  });

async function measureHandler(sink: Sink, azurite: Azurite) {
  const { port } = await sink.start({ security: SECURITY });
  const harness: SendHarness = await startSendHarness({
    connectionString: azurite.connectionString,
    accounts: [
      testAccount({
        id: 'bench',
        port,
        smtp: { security: SECURITY },
        rateLimit: { messagesPerMinute: 100_000, concurrentConnections: HANDLER_CONNECTIONS },
      }),
    ],
    policy: DEFAULT_POLICY,
  });
  const stopHarness = once(() => harness.stop());
  cleanups.push(stopHarness);
  const { services, runtime } = harness;
  const outbox = runtime.storage.queue(QUEUES.outbox);
  const runId = Date.now().toString(36);
  const enqueueStarted = performance.now();
  await runLimited(CFG.m, 32, (i) =>
    outbox.sendMessage(
      encodeQueueJson({ id: `bench-${runId}-${i}`, to: ['rcpt@example.com'], subject: `Benchmark message ${i}`, text: TEXT }),
    ),
  );
  const enqueueMs = performance.now() - enqueueStarted;
  progress(`enqueued ${CFG.m} messages in ${Math.round(enqueueMs)} ms`);

  if (WHAT_IF.includes('no-ledger-get')) services.ledger.get = async () => undefined;
  if (WHAT_IF.includes('no-results'))
    services.results.sendMessage = (async () => ({})) as unknown as typeof services.results.sendMessage;
  if (WHAT_IF.includes('no-budget-io')) {
    const grant = { acquire: async () => ({ ok: true as const }) };
    services.budgetFor = () => grant as unknown as ReturnType<typeof services.budgetFor>;
  }

  const ops = countStorageOps();
  cleanups.push(() => ops.stop());
  const timings = STAGES ? new StageTimings() : undefined;
  if (timings) {
    const account = harness.accounts[0]!;
    timings.wrap(services.ledger, 'get', 'ledger.get');
    timings.wrap(services.ledger, 'write', 'ledger.write (claim, outcome)');
    timings.wrap(services.gate, 'check', 'gate.check');
    timings.wrap(services.tokens, 'get', 'tokens.get');
    timings.wrap(services.budgetFor(account), 'acquire', 'budget.acquire');
    timings.wrap(services.senderFor(account), 'acquire', 'lane wait');
    timings.wrap(services.results, 'sendMessage', 'results.sendMessage');
    timings.wrap(services.outbox.client, 'sendMessage', 'outbox.sendMessage (defer)');
    const leases = runtime.storage.table(TABLES.leases);
    timings.wrap(leases, 'getEntity', 'leases.getEntity (budget read)');
    timings.wrap(leases, 'updateEntity', 'leases.updateEntity (budget write)');
  }

  const profiler = PROFILE_DIR ? await startProfiles({ azurite: azurite.pid, sink: sink.child.pid }) : undefined;
  const cpu = await cpuMeter({ bench: process.pid, azurite: azurite.pid, sink: sink.child.pid });
  const deadline = performance.now() + 120_000;
  let handled = 0;
  const pump = startPump(
    outbox,
    async (payload, metadata) => {
      const started = performance.now();
      const context = new InvocationContext({
        invocationId: `bench-${metadata.id}`,
        functionName: 'sendMail',
        triggerMetadata: { ...metadata },
      });
      try {
        await sendMail(payload, context);
      } finally {
        handled++;
        timings?.add('handler (whole invocation)', performance.now() - started);
      }
    },
    {
      concurrency: HANDLER_CONCURRENCY,
      batchSize: 32,
      visibilityTimeoutSeconds: 300,
      shouldStop: () => handled >= CFG.m || performance.now() > deadline,
      ...(timings ? { timings } : {}),
    },
  );
  await pump.done;
  ops.stop();
  const cpuUse = await cpu();
  const profiles = profiler ? await profiler.stop() : [];
  const { stats } = pump;
  const ms = (stats.lastDoneAt ?? 0) - (stats.firstReceiveAt ?? 0);
  const rate = ms > 0 ? (stats.completed / ms) * 1000 : 0;
  const sinkStats = await sink.stats();
  const results = await runtime.storage.queue(QUEUES.results).getProperties();
  const deferred = harness.logs.filter((line) => line.includes('"mail.deferred"')).length;
  const failed = harness.logs.filter((line) => line.includes('"mail.failed"')).length;
  // With --expose-gc: how much of the heap is live (retained) rather than garbage not yet collected.
  const gc = (globalThis as { gc?: () => void }).gc;
  gc?.();
  const heapAfterGcMb = gc ? process.memoryUsage().heapUsed / (1024 * 1024) : undefined;
  await stopHarness();
  return {
    storageOps: ops.total(),
    storageOpCounts: ops.counts,
    heapAfterGcMb,
    rate,
    ms,
    completed: stats.completed,
    errors: stats.errors,
    firstError: stats.firstError,
    accepted: sinkStats.accepted,
    resultsQueued: results.approximateMessagesCount ?? 0,
    deferred,
    failed,
    receives: stats.receives,
    cpuUse,
    enqueueMs,
    timings,
    profiles,
  };
}

/** Starts CPU profiles here (inspector) and in the child processes (SIGUSR2, see cpuProfile.mjs). */
async function startProfiles(children: Record<string, number>) {
  const session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.setSamplingInterval', { interval: 250 });
  await session.post('Profiler.start');
  for (const pid of Object.values(children)) process.kill(pid, 'SIGUSR2');
  return {
    async stop(): Promise<string[]> {
      const { profile } = await session.post('Profiler.stop');
      session.disconnect();
      const own = path.join(PROFILE_DIR!, `bench-${process.pid}.cpuprofile`);
      await writeFile(own, JSON.stringify(profile));
      for (const pid of Object.values(children)) process.kill(pid, 'SIGUSR2');
      const files = [own];
      for (const [name, pid] of Object.entries(children)) {
        const file = path.join(PROFILE_DIR!, `${name === 'sink' ? 'sinkProcess' : name}-${pid}.cpuprofile`);
        for (let waited = 0; waited < 5_000; waited += 100) {
          try {
            statSync(file);
            files.push(file);
            break;
          } catch {
            await sleep(100);
          }
        }
      }
      return files;
    },
  };
}

/** The shared budget on the Graph transport: the same workers, sending through GraphSender to the stand-in. */
async function measureGraphBudget(azurite: Azurite, storage: StorageClients) {
  const peers = spawnChild('test/bench/graphPeersProcess.ts');
  cleanups.push(() => peers.stop());
  const graph = await peers.request<{ url: string; accessToken: string; issuer: string; clientId: string; clientSecret: string }>(
    'start',
    {
      mailboxBudget: { perWindow: CFG.perWindow, windowMs: CFG.windowMs },
    },
  );
  const outbox = storage.queue(QUEUES.outbox);
  await outbox.clearMessages();
  const backlog = ALLOWED + 2 * CFG.perWindow;
  const runId = Date.now().toString(36);
  await runLimited(backlog, 32, (i) =>
    outbox.sendMessage(
      encodeQueueJson({ id: `graph-budget-${runId}-${i}`, to: ['rcpt@example.com'], subject: `Graph budget ${i}`, text: TEXT }),
    ),
  );
  // One vault for all instances: a shared secret file with the app's client secret; prepared one after the other, so
  // that the first creates the key that seals access tokens and the others find it.
  const secretsFile = path.join(await mkdtemp(path.join(os.tmpdir(), 'outbox-bench-graph-')), 'secrets.json');
  await new FileSecretStore(secretsFile).set('bench-graph-secret', graph.clientSecret);
  const workers = Array.from({ length: WORKERS }, () => spawnChild('test/bench/budgetWorker.ts'));
  cleanups.push(() => Promise.all(workers.map((w) => w.stop())));
  for (const worker of workers)
    await worker.request('prepare', {
      connectionString: azurite.connectionString,
      port: 9,
      accountId: 'shared-graph',
      perWindow: CFG.perWindow,
      windowMs: CFG.windowMs,
      concurrency: HANDLER_CONCURRENCY,
      graph,
      secretsFile,
    });
  const startAt = Date.now() + 300;
  const results = await Promise.all(
    workers.map((worker) => worker.request<WorkerStats>('run', { startAt, durationMs: DURATION_MS }, DURATION_MS + 60_000)),
  );
  const stats = await peers.request<{ takenInRange: number; throttled: number }>('stats', {
    from: startAt,
    to: startAt + DURATION_MS,
  });
  await Promise.all(workers.map((w) => w.stop(10_000)));
  await peers.stop();
  await outbox.clearMessages();
  return { stats, workers: results, backlog, ratio: stats.takenInRange / ALLOWED };
}

async function measureBudget(sink: Sink, azurite: Azurite, storage: StorageClients) {
  const { port } = await sink.start({
    security: 'plain',
    maxConnections: 3,
    messagesPerWindow: CFG.perWindow,
    windowMs: CFG.windowMs,
  });
  const outbox = storage.queue(QUEUES.outbox);
  await outbox.clearMessages();
  const backlog = ALLOWED + 2 * CFG.perWindow;
  const runId = Date.now().toString(36);
  await runLimited(backlog, 32, (i) =>
    outbox.sendMessage(
      encodeQueueJson({ id: `budget-${runId}-${i}`, to: ['rcpt@example.com'], subject: `Budget message ${i}`, text: TEXT }),
    ),
  );
  const workers = Array.from({ length: WORKERS }, () => spawnChild('test/bench/budgetWorker.ts'));
  cleanups.push(() => Promise.all(workers.map((w) => w.stop())));
  await Promise.all(
    workers.map((worker) =>
      worker.request('prepare', {
        connectionString: azurite.connectionString,
        port,
        accountId: 'shared',
        perWindow: CFG.perWindow,
        windowMs: CFG.windowMs,
        concurrency: HANDLER_CONCURRENCY,
        whatIf: WHAT_IF,
      }),
    ),
  );
  progress(`${WORKERS} workers ready; sending for ${DURATION_MS / 1000} s against ${CFG.perWindow} per ${CFG.windowMs / 1000} s`);
  const startAt = Date.now() + 300;
  const results = await Promise.all(
    workers.map((worker) => worker.request<WorkerStats>('run', { startAt, durationMs: DURATION_MS }, DURATION_MS + 60_000)),
  );
  const stats = await sink.stats({ from: startAt, to: startAt + DURATION_MS, windowMs: CFG.windowMs });
  await Promise.all(workers.map((w) => w.stop(10_000)));
  return { startAt, stats, workers: results, backlog, ratio: stats.acceptedInRange / ALLOWED };
}

/** dist/index.mjs, built first when it is missing or older than the sources. */
async function buildBundleIfStale(): Promise<{ file: string; built: boolean; buildError?: string }> {
  const file = path.join(ROOT, 'dist', 'index.mjs');
  const newest = newestMtime([
    path.join(ROOT, 'functions'),
    path.join(ROOT, 'shared'),
    ...['esbuild.config.mjs', 'package.json', 'package-lock.json'].map((f) => path.join(ROOT, f)),
  ]);
  let built = false;
  let buildError: string | undefined;
  let stale: boolean;
  try {
    stale = statSync(file).mtimeMs < newest;
  } catch {
    stale = true;
  }
  if (stale) {
    progress('dist/index.mjs is missing or older than the sources: building');
    const { code, output } = await run(process.execPath, ['esbuild.config.mjs']);
    if (code === 0) built = true;
    else {
      // Someone's half-done edit must not cost the whole report: measure the last good bundle, and say so.
      buildError = output.trim().split('\n').slice(0, 3).join(' | ');
      try {
        statSync(file);
      } catch {
        throw new Error(`build failed and there is no earlier dist/index.mjs:\n${output}`);
      }
    }
  }
  return { file, built, ...(buildError ? { buildError } : {}) };
}

const ensureBundle = once(buildBundleIfStale);

async function measureBundle() {
  const { file, built, buildError } = await ensureBundle();
  const bytes = statSync(file).size;
  const code = `const t0 = performance.now();
await import(${JSON.stringify(pathToFileURL(file).href)});
const t1 = performance.now();
process.stdout.write('\\n' + JSON.stringify({ bundleLoadMs: t1 - t0, sinceStartMs: t1, rssMb: process.memoryUsage.rss() / 1048576 }) + '\\n');
process.exit(0);`;
  const loads: Array<{ bundleLoadMs: number; sinceStartMs: number; rssMb: number }> = [];
  for (let i = 0; i < CFG.loads; i++) {
    const { code: exit, stdout, output } = await run(process.execPath, ['--input-type=module', '-e', code]);
    const line = stdout.split('\n').find((l) => l.startsWith('{"bundleLoadMs"'));
    if (exit !== 0 || !line) throw new Error(`loading the bundle failed:\n${output}`);
    loads.push(JSON.parse(line));
  }
  return {
    bytes,
    built,
    buildError,
    loadMs: median(loads.map((l) => l.bundleLoadMs)),
    sinceStartMs: median(loads.map((l) => l.sinceStartMs)),
    rssMb: median(loads.map((l) => l.rssMb)),
    loads: loads.map((l) => round(l.bundleLoadMs)),
  };
}

function newestMtime(paths: string[]): number {
  let newest = 0;
  const visit = (p: string) => {
    let stat;
    try {
      stat = statSync(p);
    } catch {
      return;
    }
    if (stat.isDirectory()) for (const entry of readdirSync(p)) visit(path.join(p, entry));
    else newest = Math.max(newest, stat.mtimeMs);
  };
  paths.forEach(visit);
  return newest;
}

function run(command: string, args: string[]): Promise<{ code: number | null; stdout: string; output: string }> {
  return new Promise((resolve, reject) => {
    const env = { ...process.env };
    if (ORIGINAL_NODE_OPTIONS === undefined) delete env.NODE_OPTIONS;
    else env.NODE_OPTIONS = ORIGINAL_NODE_OPTIONS;
    const child = spawn(command, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], env });
    let stdout = '';
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk;
      output += chunk;
    });
    child.stderr.on('data', (chunk: Buffer) => (output += chunk));
    child.once('error', reject);
    child.once('exit', (code) => resolve({ code, stdout, output }));
  });
}

// ---- main ----------------------------------------------------------------------------------------------

const rss = rssSampler(25);
const rssAfterImportsMb = process.memoryUsage.rss() / (1024 * 1024);
const loadAtStart = os.loadavg()[0]!;
type ReportKey =
  | 'raw_msgs_per_s'
  | 'core_msgs_per_s'
  | 'core_raw_ratio'
  | 'raw_burst_msgs_per_s'
  | 'core_burst_msgs_per_s'
  | 'core_burst_ratio'
  | 'handler_msgs_per_s'
  | 'budget_ratio'
  | 'throttle_replies'
  | 'rss_mb_peak'
  | 'bundle_bytes'
  | 'bundle_load_ms'
  | 'storage_ops_per_msg'
  | 'app_rss_mb_peak'
  | 'deferrals_per_sent'
  | 'invocations_per_sent'
  | 'b_p50_s'
  | 'b_p95_s'
  | 'out_of_order_share'
  | 'next_attempt_late_s_max'
  | 'relay_msgs_per_s'
  | 'relay_p95_ms'
  | 'relay_rss_mb'
  | 'race_ids'
  | 'race_duplicates'
  | 'race_property_runs'
  | 'race_property_failed'
  | 'graph_raw_msgs_per_s'
  | 'graph_core_msgs_per_s'
  | 'graph_core_raw_ratio'
  | 'graph_budget_ratio'
  | 'graph_throttle_replies'
  | 'p7_accounts'
  | 'p7_refresh_minutes'
  | 'p7_kv_throttles'
  | 'p7_kv_writes_per_refresh'
  | 'p7_kv_writes_per_day_reusable'
  | 'p7_accounts_page_ms'
  | 'p7_accounts_page_cold_ms'
  | 'p7_accounts_page_warm_ms';
const report: Record<ReportKey, number | null> = {
  raw_msgs_per_s: null,
  core_msgs_per_s: null,
  core_raw_ratio: null,
  raw_burst_msgs_per_s: null,
  core_burst_msgs_per_s: null,
  core_burst_ratio: null,
  handler_msgs_per_s: null,
  budget_ratio: null,
  throttle_replies: null,
  rss_mb_peak: null,
  bundle_bytes: null,
  bundle_load_ms: null,
  storage_ops_per_msg: null,
  app_rss_mb_peak: null,
  deferrals_per_sent: null,
  invocations_per_sent: null,
  b_p50_s: null,
  b_p95_s: null,
  out_of_order_share: null,
  next_attempt_late_s_max: null,
  relay_msgs_per_s: null,
  relay_p95_ms: null,
  relay_rss_mb: null,
  race_ids: null,
  race_duplicates: null,
  race_property_runs: null,
  race_property_failed: null,
  graph_raw_msgs_per_s: null,
  graph_core_msgs_per_s: null,
  graph_core_raw_ratio: null,
  // Both need the send pipeline on the Graph transport (several workers against the stand-in's limits).
  graph_budget_ratio: null,
  graph_throttle_replies: null,
  p7_accounts: null,
  p7_refresh_minutes: null,
  p7_kv_throttles: null,
  p7_kv_writes_per_refresh: null,
  p7_kv_writes_per_day_reusable: null,
  p7_accounts_page_ms: null,
  p7_accounts_page_cold_ms: null,
  p7_accounts_page_warm_ms: null,
};
const lines: string[] = [];
const details: string[] = [];
let workerRssPeak = 0;
let workerRssAfterPrepare = 0;
let sinkRssPeak = 0;
let failure: unknown;
let rssBeforeP7: number | undefined;
const benchStarted = performance.now();
// The full run has the backlog (about 100 s) and the bundle's memory run besides the rest.
// p7's 10,000 refreshes may take up to their 15-minute target on their own.
const WATCHDOG_MINUTES = (QUICK ? 8 : 16) + (ONLY.has('p7') ? (QUICK ? 4 : 20) : 0);
const watchdog = setTimeout(() => {
  progress(`the benchmark took more than ${WATCHDOG_MINUTES} minutes: aborting`);
  void cleanup().finally(() => process.exit(1));
}, WATCHDOG_MINUTES * 60_000);
watchdog.unref();

let stackConnectionString: string | undefined;
try {
  const needsStack = ['raw', 'core', 'burst', 'handler', 'budget', 'backlog', 'apprss', 'race', 'graph'].some((part) =>
    ONLY.has(part),
  );
  if (needsStack) {
    const sinkChild = spawnChild('test/bench/sinkProcess.ts');
    cleanups.push(() => sinkChild.stop());
    const sink: Sink = {
      child: sinkChild,
      start: (options) => sinkChild.request('start', { options }),
      stats: (query = {}) => sinkChild.request('stats', query),
    };
    progress('starting Azurite and the SMTP sink');
    const azurite = await startAzurite();
    cleanups.push(() => azurite.stop());
    stackConnectionString = azurite.connectionString;
    const storage = createStorageClients({ MailStorage: azurite.connectionString });
    await storage.ensureCreated();

    if (ONLY.has('raw')) {
      progress(
        `raw vs core: ${CFG.n} messages, ${CONNECTIONS} connections, ${CLIENT_CONCURRENCY} in flight, ${CFG.rounds} round(s)`,
      );
      const rc = await measureRawCore(sink, storage);
      report.raw_msgs_per_s = round(rc.raw);
      report.core_msgs_per_s = round(rc.core);
      report.core_raw_ratio = round(rc.core / rc.raw, 3);
      details.push(
        `raw rounds (msg/s): ${rc.rawRounds.map((r) => round(r)).join(', ')}; core rounds: ${rc.coreRounds.map((r) => round(r)).join(', ')}`,
      );
      details.push(
        `client CPU per message (median): raw ${rc.rawCpu.toFixed(3)} ms, core ${rc.coreCpu.toFixed(3)} ms (core/raw ${(rc.coreCpu / rc.rawCpu).toFixed(2)})`,
      );
      details.push(...rc.notes);
    }

    if (ONLY.has('burst')) {
      progress(`burst: ${CFG.n} messages started at once, ${BURST_CONNECTIONS} connections, ${CFG.rounds} round(s)`);
      const b = await measureBurst(sink, storage);
      report.raw_burst_msgs_per_s = round(b.raw);
      report.core_burst_msgs_per_s = round(b.core);
      report.core_burst_ratio = round(b.core / b.raw, 3);
      details.push(
        `burst rounds (msg/s): raw ${b.rawRounds.map((r) => round(r)).join(', ')}; core ${b.coreRounds.map((r) => round(r)).join(', ')}`,
      );
      details.push(
        `burst client CPU per message (median): raw ${b.rawCpu.toFixed(3)} ms, core ${b.coreCpu.toFixed(3)} ms (core/raw ${(b.coreCpu / b.rawCpu).toFixed(2)})`,
      );
      details.push(...b.notes);
    }

    if (ONLY.has('handler')) {
      progress(`handler: ${CFG.m} queued messages, ${HANDLER_CONCURRENCY} invocations in flight`);
      const h = await measureHandler(sink, azurite);
      report.handler_msgs_per_s = round(h.rate);
      report.storage_ops_per_msg = round(h.storageOps / Math.max(1, h.accepted), 2);
      details.push(
        `handler storage operations (besides receive and delete): ${h.storageOps} for ${h.accepted} sent: ${Object.entries(
          h.storageOpCounts,
        )
          .map(([name, n]) => `${name} ${n}`)
          .join(', ')}`,
      );
      details.push(
        `handler: ${h.completed} completed in ${Math.round(h.ms)} ms (first receive → last delete), ${h.errors} handler errors, ${h.deferred} deferred, ${h.failed} failed; sink accepted ${h.accepted}, results queued ${h.resultsQueued}; ${h.receives} receives; enqueue of ${CFG.m} took ${Math.round(h.enqueueMs)} ms`,
      );
      const perMsg = Object.entries(h.cpuUse).map(([name, c]) => [name, c.ms / Math.max(1, h.completed)] as const);
      details.push(
        `handler CPU: ${perMsg.map(([name, ms]) => `${name} ${h.cpuUse[name]!.percent}% of a core, ${ms.toFixed(2)} ms/msg`).join('; ')}`,
      );
      // Load-independent ceiling: each process is one event loop, and all of them share the machine's cores.
      const total = perMsg.reduce((sum, [, ms]) => sum + ms, 0);
      const ceilings = [
        ...perMsg.map(([name, ms]) => [name, 1000 / ms] as const),
        [`all on ${os.cpus().length} cores`, (os.cpus().length * 1000) / total] as const,
      ];
      const [limit, limitRate] = ceilings.reduce((a, b) => (b[1] < a[1] ? b : a));
      details.push(
        `handler ceiling from CPU per message (on an otherwise idle machine): ${Math.round(limitRate)} msg/s, set by ${limit} (${ceilings.map(([n, r]) => `${n} ${Math.round(r)}`).join(', ')})`,
      );
      if (h.heapAfterGcMb !== undefined)
        details.push(`handler: V8 heap after a full GC at the end: ${round(h.heapAfterGcMb)} MB`);
      if (h.firstError) details.push(`handler first error: ${h.firstError.split('\n')[0]}`);
      for (const file of h.profiles) details.push(...formatSummary(summarizeProfile(file), `CPU profile ${path.basename(file)}`));
      if (h.timings) {
        details.push('handler stages (per call: mean / max ms, calls):');
        for (const [stage, t] of [...h.timings.stages.entries()].sort((a, b) => b[1].totalMs - a[1].totalMs)) {
          details.push(
            `  ${stage.padEnd(36)} ${(t.totalMs / t.count).toFixed(2).padStart(8)} / ${t.maxMs.toFixed(1).padStart(7)}  ×${t.count}`,
          );
        }
      }
    }

    if (ONLY.has('budget')) {
      const b = await measureBudget(sink, azurite, storage);
      report.budget_ratio = round(b.ratio, 3);
      report.throttle_replies = b.stats.throttleReplies;
      workerRssPeak = Math.max(0, ...b.workers.map((w) => w.rssMbPeak));
      workerRssAfterPrepare = Math.max(0, ...b.workers.map((w) => w.rssMbAfterPrepare));
      details.push(
        `budget: accepted ${b.stats.acceptedInRange} within ${DURATION_MS / 1000} s (allowed ${ALLOWED}), ${b.stats.accepted} in all; throttles: ${b.stats.connectionThrottles} connection, ${b.stats.rateThrottles} rate; sink connections peak ${b.stats.connectionsPeak}; most in one ${CFG.windowMs / 1000} s window ${b.stats.peakInWindow} (limit ${CFG.perWindow})`,
      );
      if (b.stats.firstAcceptedAt !== undefined)
        details.push(
          `budget: first accepted ${b.stats.firstAcceptedAt - b.startAt} ms after start, last ${(b.stats.lastAcceptedAt ?? 0) - b.startAt} ms`,
        );
      for (const w of b.workers) {
        details.push(
          `  worker ${w.pid}: outcomes ${JSON.stringify(w.outcomes)}, deferrals ${JSON.stringify(w.deferrals)}, in flight at end ${w.inFlightAtEnd}, errors ${w.errors}, lanes at end ${w.lanesAtEnd}, RSS peak ${round(w.rssMbPeak)} MB${w.firstError ? `, first error: ${w.firstError.split('\n')[0]}` : ''}`,
        );
      }
    }
    if (ONLY.has('backlog')) {
      const { port } = await sink.start({ security: 'plain' });
      progress(
        `backlog: ${CFG.backlog} messages for A at ${BACKLOG.perMinute}/min (window ${BACKLOG.windowMs / 1000} s), B every ${BACKLOG.bEveryMs / 1000} s`,
      );
      const b = await measureBacklog({
        connectionString: azurite.connectionString,
        port,
        backlog: CFG.backlog,
        ...BACKLOG,
        concurrency: HANDLER_CONCURRENCY,
        maxMs: 150_000,
      });
      report.deferrals_per_sent = round(b.deferralsPerSent, 2);
      report.invocations_per_sent = round(b.invocationsPerSent, 2);
      report.b_p50_s = round(b.bP50Ms / 1000, 2);
      report.b_p95_s = round(b.bP95Ms / 1000, 2);
      report.out_of_order_share = round(b.outOfOrderShare, 3);
      report.next_attempt_late_s_max = round(b.nextAttemptLateMsMax / 1000, 1);
      details.push(
        `backlog: A sent ${b.aSent}/${CFG.backlog}, B sent ${b.bSent}/${b.bEnqueued} in ${round(b.ms / 1000)} s; ${b.deferrals} deferrals, ${b.invocations} invocations for ${b.sent} sent; A most places out of order ${b.maxDisplacement}; ${b.errors} handler errors${b.firstError ? ` (${b.firstError.split('\n')[0]})` : ''}`,
      );
    }

    if (ONLY.has('apprss')) {
      const { port } = await sink.start({ security: 'plain' });
      progress(`app RSS: the built bundle in plain node, ${CFG.appM} messages, ${HANDLER_CONCURRENCY} invocations in flight`);
      const a = await measureAppRss({
        connectionString: azurite.connectionString,
        port,
        messages: CFG.appM,
        concurrency: HANDLER_CONCURRENCY,
        ensureBundle: () => ensureBundle(),
      });
      report.app_rss_mb_peak = round(a.rssMbPeak);
      details.push(
        `app RSS: ${a.completed} invocations (${a.errors} errors) of the bundle's sendMail in ${round(a.ms / 1000)} s; RSS ${round(a.rssMbAfterLoad)} MB after load, peak ${round(a.rssMbPeak)} MB`,
      );
    }
    if (ONLY.has('graph')) {
      progress(
        `graph budget: ${WORKERS} workers on the Graph transport, stand-in allowing ${CFG.perWindow} per ${CFG.windowMs / 1000} s`,
      );
      const g = await measureGraphBudget(azurite, storage);
      report.graph_budget_ratio = round(g.ratio, 3);
      report.graph_throttle_replies = g.stats.throttled;
      details.push(
        `graph budget: ${g.stats.takenInRange} taken in ${DURATION_MS / 1000} s of ${ALLOWED} allowed (backlog ${g.backlog}); ${g.stats.throttled} refused 429 by the stand-in; workers: ${g.workers
          .map(
            (w) =>
              `${w.outcomes.sent ?? 0} sent, deferrals ${JSON.stringify(w.deferrals)}, ${w.errors} errors${w.firstError ? ` (${w.firstError.split('\n')[0]})` : ''}${w.firstOtherDeferral ? `; first other deferral: ${w.firstOtherDeferral}` : ''}`,
          )
          .join(' | ')}`,
      );
    }

    if (ONLY.has('race')) {
      const burstSize = QUICK ? 500 : 2_000;
      progress(`race: copies of one id at the same moment, idle and inside a ${burstSize}-message burst`);
      const race = await measureRace(azurite.connectionString, burstSize);
      report.race_ids = race.ids;
      report.race_duplicates = race.duplicates;
      details.push(...race.details);
      // The test suite runs the property 500 times; the full bench runs it longer.
      if (!QUICK) {
        const runs = 3_000;
        progress(`race: the interleaving property, ${runs} runs`);
        const property = await runRaceProperty(runs);
        report.race_property_runs = property.runs;
        report.race_property_failed = property.ok ? 0 : 1;
        if (!property.ok) details.push(`race property FAILED:\n${property.output.split('\n').slice(-40).join('\n')}`);
      }
    }
    sinkRssPeak = (await sink.stats().catch(() => undefined))?.rssMbPeak ?? 0;
  }

  if (ONLY.has('relay')) {
    // Builds its own bundle of the relay (relay/build.mjs) into a temporary directory; uses the stack's Azurite
    // when there is one (it clears mail-outbox, so it runs after the parts above), else starts its own.
    progress(`relay: ${QUICK ? 400 : 1500} messages of 100 KB from devices over STARTTLS`);
    const r = await runRelayBench({
      ...(QUICK ? { messages: 400, warmup: 50 } : {}),
      ...(stackConnectionString ? { connectionString: stackConnectionString } : {}),
      progress: (text) => progress(`relay: ${text}`),
    });
    report.relay_msgs_per_s = r.relay_msgs_per_s;
    report.relay_p95_ms = r.relay_p95_ms;
    report.relay_rss_mb = r.relay_rss_mb;
    details.push(...r.details);
  }

  if (ONLY.has('graph')) {
    progress(`graph: ${CFG.n} messages to the Graph stand-in, raw fetch vs GraphSender, ${CFG.rounds} round(s)`);
    const graphChild = spawnChild('test/bench/graphBenchProcess.ts');
    cleanups.push(() => graphChild.stop());
    const g = await graphChild.request<GraphBenchResult>(
      'run',
      {
        messages: CFG.n,
        warmup: CFG.warmup,
        rounds: CFG.rounds,
        ...(stackConnectionString ? { connectionString: stackConnectionString } : {}),
      },
      600_000,
    );
    await graphChild.stop();
    report.graph_raw_msgs_per_s = g.graph_raw_msgs_per_s;
    report.graph_core_msgs_per_s = g.graph_core_msgs_per_s;
    report.graph_core_raw_ratio = g.graph_core_raw_ratio;
    details.push(...g.details);
  }

  if (ONLY.has('p7')) {
    // p7 holds thousands of accounts, a provider and a vault in this process: its memory is not the send path's.
    rssBeforeP7 = rss.peakMb();
    let connectionString = stackConnectionString;
    if (!connectionString) {
      progress('p7: starting Azurite');
      const azurite = await startAzurite();
      cleanups.push(() => azurite.stop());
      connectionString = azurite.connectionString;
    }
    const p7 = await runRefreshBench({
      connectionString,
      accounts: P7_ACCOUNTS,
      progress: (text) => progress(`p7: ${text}`),
    });
    report.p7_accounts = p7.p7_accounts;
    report.p7_refresh_minutes = p7.p7_refresh_minutes;
    report.p7_kv_throttles = p7.p7_kv_throttles;
    report.p7_kv_writes_per_refresh = p7.p7_kv_writes_per_refresh;
    report.p7_kv_writes_per_day_reusable = p7.p7_kv_writes_per_day_reusable;
    details.push(...p7.details);
  }

  if (ONLY.has('bundle')) {
    progress('bundle: size and load time');
    const bundle = await measureBundle();
    report.bundle_bytes = bundle.bytes;
    report.bundle_load_ms = round(bundle.loadMs);
    details.push(
      `bundle: ${bundle.buildError ? `BUILD FAILED, measured the previous (stale) dist/index.mjs: ${bundle.buildError}` : bundle.built ? 'rebuilt' : 'up to date'}; load times (ms) ${bundle.loads.join(', ')}; node start → loaded ${round(bundle.sinceStartMs)} ms; RSS after load ${round(bundle.rssMb)} MB`,
    );
  }
} catch (error) {
  failure = error;
} finally {
  await cleanup();
}

report.rss_mb_peak = round(Math.max(rssBeforeP7 ?? rss.peakMb(), workerRssPeak));
if (rssBeforeP7 !== undefined) details.push(`p7: bench process RSS peak ${round(rss.peakMb())} MB during p7 (not in RSS peak)`);
details.push(
  `RSS peak: bench process ${round(rss.peakMb())} MB (${round(rssAfterImportsMb)} MB once its modules were loaded under tsx; V8 heap at the peak ${round(rss.atPeak().heapUsedMb)} MB used of ${round(rss.atPeak().heapTotalMb)} MB), budget workers ${round(workerRssPeak)} MB (${round(workerRssAfterPrepare)} MB after start-up), sink process ${round(sinkRssPeak)} MB (not counted: stands in for the remote server)`,
);
// After the stack has stopped: the accounts part starts an Azurite of its own.
if (ONLY.has('accounts') && !failure) {
  const count = QUICK ? 2_000 : 10_000;
  progress(`accounts: the status page's first page with ${count} accounts`);
  try {
    const a = await measureAccountsPage({ accounts: count, progress });
    report.p7_accounts_page_ms = a.firstMs;
    report.p7_accounts_page_cold_ms = a.coldMs;
    report.p7_accounts_page_warm_ms = a.warmMs;
    details.push(...a.details);
  } catch (error) {
    failure = error;
  }
}

details.push(`total time ${round((performance.now() - benchStarted) / 1000)} s`);
rss.stop();

// ---- report --------------------------------------------------------------------------------------------

const verdict = (value: number | null, ok: (v: number) => boolean) => (value === null ? 'n/a' : ok(value) ? 'OK' : 'MISSED');
const mb = (bytes: number) => `${round(bytes / (1024 * 1024), 2)} MB`;
lines.push(
  `oauth-outbox bench${QUICK ? ' (--quick)' : ''}: node ${process.version}, ${os.cpus().length} cores (load average ${loadAtStart.toFixed(1)} at start, ${os.loadavg()[0]!.toFixed(1)} at end), SMTP ${SECURITY} on loopback, Azurite in memory`,
  ...(WHAT_IF.length ? [`WHAT-IF RUN (${WHAT_IF.join(', ')}): stand-ins for proposed changes, not the shipped code`] : []),
  '',
  'What is measured:',
  `  raw       ${CFG.n} small text messages through nodemailer's pool (maxConnections ${CONNECTIONS}, XOAUTH2) to the sink, ${CLIENT_CONCURRENCY} in flight; median of ${CFG.rounds} round(s) after a warm-up`,
  `  core      the same ${CFG.n} through composeMail + AccountSender.send (${CONNECTIONS} lanes, connection slots leased in Azurite), ${CLIENT_CONCURRENCY} in flight`,
  `  burst     ${CFG.n} messages all started at once (Promise.all): raw through nodemailer's pool (maxConnections ${BURST_CONNECTIONS}), core through AccountSender (${BURST_CONNECTIONS} connection slots in Azurite, waiting up to ${DEFAULT_POLICY.maxInProcessWaitMs / 1000} s for a connection); median of ${CFG.rounds}`,
  `  handler   ${CFG.m} messages queued on mail-outbox, then the sendMail handler (ledger, budget, results, deletes on Azurite) with ${HANDLER_CONCURRENCY} invocations in flight; first receive → last delete`,
  `  budget    ${WORKERS} worker processes, one account, sink allowing 3 connections and ${CFG.perWindow} messages per ${CFG.windowMs / 1000} s (432 4.3.2 beyond); accepted within ${DURATION_MS / 1000} s ÷ allowed (${ALLOWED})`,
  `  backlog   ${CFG.backlog} messages for account A (${BACKLOG.perMinute}/min, time-compressed to a ${BACKLOG.windowMs / 1000} s window), one for B every ${BACKLOG.bEveryMs / 1000} s, sendMail with ${HANDLER_CONCURRENCY} in flight`,
  `  apprss    peak RSS of the built bundle in plain node (no TypeScript loader) running sendMail, ${HANDLER_CONCURRENCY} in flight`,
  `  race      50 ids × 3 copies and 10 ids × 8 copies enqueued at the same moment through sendMail (16 in flight), idle and inside a ${QUICK ? 500 : 2_000}-message burst; then (full run only) the interleaving property (test/exactlyOnce.test.ts) for 3000 runs`,
  `  relay     ${QUICK ? 400 : 1500} messages of 100 KB from 8 pooled STARTTLS device connections through the relay's bundle (its own process) to blob + queue on Azurite; rate, p95 latency, the relay's peak RSS`,
  `  accounts  the status page's first page (the real admin handler) with ${QUICK ? 2_000 : 10_000} run-time accounts and their status rows on Azurite: first view on a running instance (counts listed fresh), on a brand-new instance (also loads the directory), warm (median of 5)`,
  `  rss       peak resident memory of the bench process and the workers (all under tsx: see the breakdown below)`,
  `  graph     ${CFG.n} small JSON messages to the Graph stand-in (real app-only tokens; its own process): raw a plain fetch loop (4 in flight), core composeMail + buildGraphRequest + GraphSender (4 slots in Azurite, 64 in flight), both in a child process; median of ${CFG.rounds}`,
  `  bundle    dist/index.mjs size; import() time in a fresh node process, median of ${CFG.loads}`,
  `  p7        ${P7_ACCOUNTS} accounts refreshed back to back (revoking rotation) against the local identity provider and the Key Vault double with its real limits; then a simulated day of hourly refreshes with reusable rotation`,
  '',
  `${'metric'.padEnd(22)}${'value'.padStart(14)}  ${'target'.padEnd(14)}status`,
  `${'-'.repeat(22)}${'-'.repeat(14)}  ${'-'.repeat(14)}------`,
);
const row = (name: string, value: string, target: string, status: string) =>
  lines.push(`${name.padEnd(22)}${value.padStart(14)}  ${target.padEnd(14)}${status}`);
const fmt = (v: number | null, unit = '') => (v === null ? '-' : `${v}${unit}`);
row('raw msg/s', fmt(report.raw_msgs_per_s), '', '');
row(
  'core msg/s',
  fmt(report.core_msgs_per_s),
  `≥ 0.9 × raw`,
  verdict(report.core_raw_ratio, (v) => v >= TARGETS.coreRatio),
);
row(
  'core / raw',
  fmt(report.core_raw_ratio),
  '≥ 0.9',
  verdict(report.core_raw_ratio, (v) => v >= TARGETS.coreRatio),
);
row('raw burst msg/s', fmt(report.raw_burst_msgs_per_s), '', '');
row(
  'core burst msg/s',
  fmt(report.core_burst_msgs_per_s),
  `≥ ${TARGETS.burstRatio} × raw`,
  verdict(report.core_burst_ratio, (v) => v >= TARGETS.burstRatio),
);
row(
  'burst core / raw',
  fmt(report.core_burst_ratio),
  `≥ ${TARGETS.burstRatio}`,
  verdict(report.core_burst_ratio, (v) => v >= TARGETS.burstRatio),
);
row(
  'handler msg/s',
  fmt(report.handler_msgs_per_s),
  `≥ ${TARGETS.handler}`,
  verdict(report.handler_msgs_per_s, (v) => v >= TARGETS.handler),
);
row(
  'budget ratio',
  fmt(report.budget_ratio),
  `≥ ${TARGETS.budgetRatio}`,
  verdict(report.budget_ratio, (v) => v >= TARGETS.budgetRatio),
);
row(
  'throttle replies',
  fmt(report.throttle_replies),
  '0',
  verdict(report.throttle_replies, (v) => v <= TARGETS.throttleReplies),
);
row(
  'RSS peak',
  fmt(report.rss_mb_peak, ' MB'),
  `≤ ${TARGETS.rssMb} MB`,
  verdict(report.rss_mb_peak, (v) => v <= TARGETS.rssMb),
);
row(
  'storage ops / msg',
  fmt(report.storage_ops_per_msg),
  '≤ 3',
  verdict(report.storage_ops_per_msg, (v) => v <= 3),
);
row(
  'app RSS peak',
  fmt(report.app_rss_mb_peak, ' MB'),
  `≤ ${TARGETS.rssMb} MB`,
  verdict(report.app_rss_mb_peak, (v) => v <= TARGETS.rssMb),
);
row(
  'deferrals / sent',
  fmt(report.deferrals_per_sent),
  '≤ 2',
  verdict(report.deferrals_per_sent, (v) => v <= 2),
);
row('invocations / sent', fmt(report.invocations_per_sent), '', '');
row(
  'B p95 in backlog',
  fmt(report.b_p95_s, ' s'),
  '≤ 10 s',
  verdict(report.b_p95_s, (v) => v <= 10),
);
row(
  'A out of order',
  fmt(report.out_of_order_share),
  '≤ 0.05',
  verdict(report.out_of_order_share, (v) => v <= 0.05),
);
row(
  'late after nextAttempt',
  fmt(report.next_attempt_late_s_max, ' s'),
  '≤ 60 s',
  verdict(report.next_attempt_late_s_max, (v) => v <= 60),
);
row(
  'relay msg/s',
  fmt(report.relay_msgs_per_s),
  `≥ ${RELAY_TARGETS.msgsPerS}`,
  verdict(report.relay_msgs_per_s, (v) => v >= RELAY_TARGETS.msgsPerS),
);
row(
  'relay p95',
  fmt(report.relay_p95_ms, ' ms'),
  `≤ ${RELAY_TARGETS.p95Ms} ms`,
  verdict(report.relay_p95_ms, (v) => v <= RELAY_TARGETS.p95Ms),
);
row(
  'relay RSS peak',
  fmt(report.relay_rss_mb, ' MB'),
  `≤ ${RELAY_TARGETS.rssMb} MB`,
  verdict(report.relay_rss_mb, (v) => v <= RELAY_TARGETS.rssMb),
);
row('graph raw msg/s', fmt(report.graph_raw_msgs_per_s), '', '');
row(
  'graph core msg/s',
  fmt(report.graph_core_msgs_per_s),
  '≥ 0.9 × raw',
  verdict(report.graph_core_raw_ratio, (v) => v >= TARGETS.coreRatio),
);
row(
  'graph budget ratio',
  fmt(report.graph_budget_ratio),
  `≥ ${TARGETS.budgetRatio}`,
  verdict(report.graph_budget_ratio, (v) => v >= TARGETS.budgetRatio),
);
row(
  'graph throttle replies',
  fmt(report.graph_throttle_replies),
  '0',
  verdict(report.graph_throttle_replies, (v) => v <= TARGETS.throttleReplies),
);
row(
  'accounts page',
  fmt(report.p7_accounts_page_ms, ' ms'),
  `≤ ${ACCOUNTS_PAGE_TARGET_MS} ms`,
  verdict(report.p7_accounts_page_ms, (v) => v <= ACCOUNTS_PAGE_TARGET_MS),
);
row('accounts page new inst.', fmt(report.p7_accounts_page_cold_ms, ' ms'), '', '');
row('accounts page warm', fmt(report.p7_accounts_page_warm_ms, ' ms'), '', '');
row('race ids', fmt(report.race_ids), '', '');
row(
  'race duplicates',
  fmt(report.race_duplicates),
  '0',
  verdict(report.race_duplicates, (v) => v === 0),
);
row(
  'race property runs',
  fmt(report.race_property_runs),
  'all hold',
  verdict(report.race_property_failed, (v) => v === 0),
);
row(
  'bundle size',
  report.bundle_bytes === null ? '-' : mb(report.bundle_bytes),
  '≤ 2.5 MB',
  verdict(report.bundle_bytes, (v) => v <= TARGETS.bundleBytes),
);
row(
  'bundle load',
  fmt(report.bundle_load_ms, ' ms'),
  `≤ ${TARGETS.bundleLoadMs} ms`,
  verdict(report.bundle_load_ms, (v) => v <= TARGETS.bundleLoadMs),
);
row('p7 accounts', fmt(report.p7_accounts), '', '');
row(
  'p7 refresh minutes',
  fmt(report.p7_refresh_minutes),
  `≤ ${REFRESH_TARGETS.refreshMinutes}`,
  verdict(report.p7_refresh_minutes, (v) => v <= REFRESH_TARGETS.refreshMinutes),
);
row(
  'p7 KV throttles',
  fmt(report.p7_kv_throttles),
  `${REFRESH_TARGETS.throttles}`,
  verdict(report.p7_kv_throttles, (v) => v <= REFRESH_TARGETS.throttles),
);
row(
  'p7 KV writes/refresh',
  fmt(report.p7_kv_writes_per_refresh),
  `≤ ${REFRESH_TARGETS.writesPerRefresh}`,
  verdict(report.p7_kv_writes_per_refresh, (v) => v <= REFRESH_TARGETS.writesPerRefresh),
);
row(
  'p7 KV writes/day (re.)',
  fmt(report.p7_kv_writes_per_day_reusable),
  `≤ ${REFRESH_TARGETS.writesPerDayReusable}`,
  verdict(report.p7_kv_writes_per_day_reusable, (v) => v <= REFRESH_TARGETS.writesPerDayReusable),
);
lines.push('', ...details);
if (failure) lines.push('', `FAILED: ${(failure as Error).stack ?? String(failure)}`);
process.stdout.write(`${lines.join('\n')}\n${JSON.stringify(report)}\n`);
process.exit(failure ? 1 : 0);
