/**
 * One instance of the app for the shared-budget benchmark: its own runtime, AccountSender (real connection
 * slots in the shared `leases` table) and RateBudget (same row as the other instances, with the benchmark's
 * window), taking messages from the shared `mail-outbox` backlog through the real send core.
 * Requests: `prepare` { connectionString, port, accountId, perWindow, windowMs, concurrency, graph? } and
 * `run` { startAt, durationMs } (epoch ms) → WorkerStats. With `graph` { url, accessToken } the account is an app-only
 * Microsoft account on the Graph transport, sending to the Graph stand-in at `url`.
 *
 * What-if experiments (`whatIf` in prepare; not the shipped behaviour, to put numbers on proposed changes):
 *   guard=<ms>      the RateBudget's guard between a grant and the server's count (default: window / 100)
 *   budget-in-lane  the budget is taken once a connection is held, right before the SMTP transaction,
 *                   instead of before waiting for a connection
 */
import type Mail from 'nodemailer/lib/mailer';
import type { Account } from '../../shared/config';
import { deliverMessage, type DeliveryOutcome } from '../../shared/delivery/deliverMessage';
import { DEFAULT_POLICY } from '../../shared/delivery/policy';
import { RateBudget } from '../../shared/limits/rateBudget';
import { FileSecretStore } from '../../shared/storage/fileSecretStore';
import { QUEUES, TABLES } from '../../shared/names';
import { startSendHarness, testAccount, type SendHarness } from '../support/sendHarness';
import { rssSampler, serve } from './ipc';
import { sleep, startPump, type Pump } from './pump';

export interface WorkerStats {
  pid: number;
  outcomes: Partial<Record<DeliveryOutcome, number>>;
  /** Deferrals by code (rate_limited, connection_limit, throttled, ...). */
  deferrals: Record<string, number>;
  /** Handler invocations still running when the duration ended. */
  inFlightAtEnd: number;
  errors: number;
  firstError?: string;
  /** Why the first deferral for something other than the limits happened (a setup problem shows here). */
  firstOtherDeferral?: string;
  lanesAtEnd: number;
  rssMbAfterPrepare: number;
  rssMbPeak: number;
}

const rss = rssSampler();
let harness: SendHarness | undefined;
let pump: Pump | undefined;
let concurrency = 16;
let rssMbAfterPrepare = 0;

serve(
  {
    async prepare(message) {
      const { connectionString, port, accountId, perWindow, windowMs } = message as unknown as {
        connectionString: string;
        port: number;
        accountId: string;
        perWindow: number;
        windowMs: number;
      };
      concurrency = Number(message.concurrency ?? 16);
      const graph = message.graph as
        { url: string; accessToken: string; issuer: string; clientId: string; clientSecret: string } | undefined;
      const rateLimit = { messagesPerMinute: Math.round((perWindow * 60_000) / windowMs), concurrentConnections: 3 };
      const onGraph = graph
        ? {
            provider: 'microsoft' as const,
            flow: 'client_credentials' as const,
            tenantId: '4b8e2c71-0d3f-4a96-8e15-7c2b9f6d0a38',
            clientId: graph.clientId,
            clientAuth: { type: 'secret' as const, secretName: 'bench-graph-secret' },
            oauth: { issuer: graph.issuer },
            transport: 'graph' as const,
            graph: { baseUrl: graph.url },
          }
        : {};
      // Instances share one vault: on Graph the workers share one secret file (client secret, sealing key).
      const secretsFile = message.secretsFile as string | undefined;
      harness = await startSendHarness({
        connectionString,
        ...(secretsFile ? { secrets: new FileSecretStore(secretsFile) } : {}),
        accounts: [testAccount({ id: accountId, port, smtp: { security: 'plain' }, rateLimit, ...onGraph })],
        policy: DEFAULT_POLICY,
        clearQueues: false,
        install: false,
        seedTokens: !graph,
      });
      if (graph)
        await harness.runtime.tokenStore.save(
          accountId,
          { accessToken: graph.accessToken, expiresAt: Date.now() + 3_600_000 },
          {},
          'graph',
        );
      const whatIf = (message.whatIf as string[] | undefined) ?? [];
      const guard = whatIf.find((w) => w.startsWith('guard='));
      const budgetOptions = guard ? { guardMs: Number(guard.slice('guard='.length)) } : {};
      // SenderPool fixes the window at 60 s; the benchmark's provider counts per `windowMs`.
      const table = harness.runtime.storage.table(TABLES.leases);
      const budgets = new Map<string, RateBudget>();
      const realBudgetFor = (account: Account) => {
        let budget = budgets.get(account.id);
        if (!budget)
          budgets.set(account.id, (budget = new RateBudget(table, account.id, () => ({ perWindow, windowMs }), budgetOptions)));
        return budget;
      };
      harness.services.budgetFor = realBudgetFor;
      if (whatIf.includes('budget-in-lane')) takeBudgetInLane(harness, realBudgetFor);
      rssMbAfterPrepare = process.memoryUsage.rss() / (1024 * 1024);
      return { pid: process.pid };
    },

    async run(message): Promise<WorkerStats> {
      if (!harness) throw new Error('run before prepare');
      const { startAt, durationMs } = message as unknown as { startAt: number; durationMs: number };
      const services = harness.services;
      const outcomes: Partial<Record<DeliveryOutcome, number>> = {};
      let inFlight = 0;
      const endAt = startAt + durationMs;
      await sleep(Math.max(0, startAt - Date.now()));
      pump = startPump(
        harness.runtime.storage.queue(QUEUES.outbox),
        async (payload, metadata) => {
          inFlight++;
          try {
            const outcome = await deliverMessage(services, payload, {
              queueMessageId: metadata.id,
              dequeueCount: metadata.dequeueCount,
              ...(metadata.insertionTime ? { insertedAt: new Date(metadata.insertionTime) } : {}),
            });
            outcomes[outcome] = (outcomes[outcome] ?? 0) + 1;
          } finally {
            inFlight--;
          }
        },
        { concurrency, batchSize: 32, visibilityTimeoutSeconds: 300, shouldStop: () => Date.now() >= endAt, emptyPollMs: 100 },
      );
      await sleep(Math.max(0, endAt - Date.now()));
      const deferrals: Record<string, number> = {};
      let firstOtherDeferral: string | undefined;
      for (const line of harness.logs) {
        if (!line.includes('"mail.deferred"')) continue;
        const code = String((JSON.parse(line) as { errorCode?: string }).errorCode);
        deferrals[code] = (deferrals[code] ?? 0) + 1;
        if (!firstOtherDeferral && !['rate_limited', 'connection_limit', 'throttled'].includes(code))
          firstOtherDeferral = String((JSON.parse(line) as { reason?: string }).reason);
      }
      const account = harness.accounts[0]!;
      return {
        pid: process.pid,
        outcomes,
        deferrals,
        inFlightAtEnd: inFlight,
        errors: pump.stats.errors,
        ...(pump.stats.firstError ? { firstError: pump.stats.firstError } : {}),
        ...(firstOtherDeferral ? { firstOtherDeferral } : {}),
        lanesAtEnd: services.senderFor(account).openConnections,
        rssMbAfterPrepare,
        rssMbPeak: rss.peakMb(),
      };
    },
  },
  async () => {
    await harness?.stop();
  },
);

/**
 * What-if: the send core's budget step grants at once, and the real budget is taken inside the connection, just
 * before the transaction (by wrapping the transports AccountSender creates), so that the time between the grant
 * and the server's count is one SMTP transaction instead of the wait for a connection.
 */
function takeBudgetInLane(h: SendHarness, realBudgetFor: (account: Account) => RateBudget): void {
  const maxWaitMs = h.services.policy.maxInProcessWaitMs;
  h.services.budgetFor = () => ({ acquire: async () => ({ ok: true as const }) }) as unknown as RateBudget;
  for (const account of h.accounts) {
    const sender = h.services.senderFor(account) as unknown as {
      createTransport: (...args: unknown[]) => { sendMail(mail: Mail.Options): Promise<unknown> };
    };
    const create = sender.createTransport.bind(sender);
    sender.createTransport = (...args: unknown[]) => {
      const transport = create(...args);
      const sendMail = transport.sendMail.bind(transport);
      transport.sendMail = async (mail: Mail.Options) => {
        const recipients = [mail.to, mail.cc, mail.bcc].flat().filter(Boolean).length;
        const grant = await realBudgetFor(account).acquire(recipients, maxWaitMs);
        if (!grant.ok)
          throw Object.assign(new Error(`4.7.0 ${grant.reason}`), { responseCode: 451, response: `451 4.7.0 ${grant.reason}` });
        return sendMail(mail);
      };
      return transport;
    };
  }
}
