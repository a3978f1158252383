/**
 * `--only=graph`: Microsoft Graph sendMail on loopback. The Graph stand-in (local/peers/graphStandIn.ts) checks
 * real app-only tokens of the local identity provider, both in a child process (graphPeersProcess.ts). Two clients
 * in this process send the same
 * small JSON messages to it, in alternating rounds after a warm-up:
 *   raw   a plain fetch loop, 4 requests in flight (Graph's limit per mailbox), the token fetched once;
 *   core  composeMail + buildGraphRequest + GraphSender (4 lanes holding slots leased in Azurite), 64 in flight.
 */
import { startAzurite } from '../../local/peers/azurite';
import { parseAccounts, type Account } from '../../shared/config';
import { composeMail } from '../../shared/delivery/composeMail';
import { buildGraphRequest } from '../../shared/graph/graphRequest';
import { GraphSender, graphSlotsKey, type GraphToken } from '../../shared/graph/graphSender';
import { ConnectionSlots } from '../../shared/limits/connectionSlots';
import { TABLES } from '../../shared/names';
import { createStorageClients, type StorageClients } from '../../shared/storage/storageClients';
import { spawnChild } from './ipc';

export interface GraphBenchResult {
  graph_raw_msgs_per_s: number;
  graph_core_msgs_per_s: number;
  graph_core_raw_ratio: number;
  details: string[];
}

const TENANT = '3f1c2a9e-7b4d-4e21-9a6c-0d5e8b7f2c41';
const MAILBOX = 'bench@contoso.test';
const RAW_IN_FLIGHT = 4;
const CORE_IN_FLIGHT = 64;
const TEXT = 'Graph benchmark message.\n'.repeat(8);

export async function runGraphBench(options: {
  messages: number;
  warmup: number;
  rounds: number;
  connectionString?: string;
  progress: (text: string) => void;
}): Promise<GraphBenchResult> {
  const stops: Array<() => Promise<unknown>> = [];
  try {
    let connectionString = options.connectionString;
    if (!connectionString) {
      const azurite = await startAzurite();
      stops.push(() => azurite.stop());
      connectionString = azurite.connectionString;
    }
    const storage = createStorageClients({ MailStorage: connectionString });
    await storage.ensureCreated();
    const peers = spawnChild('test/bench/graphPeersProcess.ts');
    stops.push(() => peers.stop());
    const started = await peers.request<{ url: string; accessToken: string }>('start');
    const [account] = parseAccounts([
      {
        id: 'bench-graph',
        provider: 'microsoft',
        tenantId: TENANT,
        flow: 'client_credentials',
        clientId: 'bench-graph',
        user: MAILBOX,
        transport: 'graph',
        graph: { baseUrl: started.url },
      },
    ]);
    const token: GraphToken = { accessToken: started.accessToken, expiresAt: Date.now() + 3_600_000 };

    const url = `${started.url}/v1.0/users/${encodeURIComponent(MAILBOX)}/sendMail`;
    const raw = (n: number) => rawRun(url, token.accessToken, n);
    const core = (n: number, tag: string) => coreRun(storage, account!, token, n, tag);
    await raw(options.warmup);
    await core(options.warmup, 'warmup');
    const rawRates: number[] = [];
    const coreRates: number[] = [];
    const details: string[] = [];
    for (let r = 0; r < options.rounds; r++) {
      const first = r % 2 === 0 ? 'raw' : 'core';
      const a = first === 'raw' ? await raw(options.messages) : undefined;
      const b = await core(options.messages, `r${r}`);
      const c = a ?? (await raw(options.messages));
      rawRates.push(c.rate);
      coreRates.push(b.rate);
      if (c.errors || b.errors)
        details.push(`graph round ${r}: raw ${c.errors} errors, core ${b.errors} errors (${b.firstError ?? c.firstError ?? ''})`);
      options.progress(`raw ${Math.round(c.rate)} msg/s, core ${Math.round(b.rate)} msg/s (round ${r + 1}/${options.rounds})`);
    }
    const stats = await peers.request<{ taken: number; requests: number }>('stats');
    const rawRate = median(rawRates);
    const coreRate = median(coreRates);
    details.unshift(
      `graph rounds (msg/s): raw ${rawRates.map(Math.round).join(', ')}; core ${coreRates.map(Math.round).join(', ')}; stand-in took ${stats.taken} messages in ${stats.requests} requests`,
    );
    return {
      graph_raw_msgs_per_s: Math.round(rawRate * 10) / 10,
      graph_core_msgs_per_s: Math.round(coreRate * 10) / 10,
      graph_core_raw_ratio: Math.round((coreRate / rawRate) * 1000) / 1000,
      details,
    };
  } finally {
    for (const stop of stops.reverse()) await stop().catch(() => undefined);
  }
}

interface Run {
  rate: number;
  errors: number;
  firstError?: string;
}

/** What a hand-written client does: the message as Graph JSON, one POST each, 4 at a time. */
async function rawRun(url: string, accessToken: string, n: number): Promise<Run> {
  let next = 0;
  let errors = 0;
  let firstError: string | undefined;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: RAW_IN_FLIGHT }, async () => {
      for (let i = next++; i < n; i = next++) {
        const body = JSON.stringify({
          message: {
            subject: `Benchmark message ${i}`,
            body: { contentType: 'Text', content: TEXT },
            toRecipients: [{ emailAddress: { address: 'rcpt@example.com' } }],
          },
          saveToSentItems: true,
        });
        const response = await fetch(url, {
          method: 'POST',
          headers: { authorization: `Bearer ${accessToken}`, 'content-type': 'application/json' },
          body,
        });
        await response.arrayBuffer();
        if (response.status !== 202) {
          errors++;
          firstError ??= `HTTP ${response.status}`;
        }
      }
    }),
  );
  return { rate: ((n - errors) / (performance.now() - started)) * 1000, errors, ...(firstError ? { firstError } : {}) };
}

async function coreRun(storage: StorageClients, account: Account, token: GraphToken, n: number, tag: string): Promise<Run> {
  const slots = new ConnectionSlots(
    storage.table(TABLES.leases),
    graphSlotsKey(account),
    () => account.graph!.concurrentRequests,
    `graph-bench-${process.pid}-${tag}`,
  );
  const sender = new GraphSender(account, slots, { timeoutMs: 30_000, idleMs: 60_000 });
  let next = 0;
  let errors = 0;
  let firstError: string | undefined;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: CORE_IN_FLIGHT }, async () => {
      for (let i = next++; i < n; i = next++) {
        try {
          const id = `graph-${tag}-${i}`;
          const composed = composeMail(
            account,
            id,
            { to: ['rcpt@example.com'], subject: `Benchmark message ${i}`, text: TEXT },
            [],
          );
          const request = await buildGraphRequest(account, id, composed);
          const lane = await sender.acquire(30_000);
          if (!lane) throw new Error('no Graph lane within 30 s');
          try {
            await lane.send(request, token);
          } finally {
            lane.release();
          }
        } catch (error) {
          errors++;
          firstError ??= (error as Error).message;
        }
      }
    }),
  );
  const ms = performance.now() - started;
  await sender.close();
  return { rate: ((n - errors) / ms) * 1000, errors, ...(firstError ? { firstError } : {}) };
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? 0;
}
