/**
 * A backlog on one mailbox beside an idle one, time-compressed: the budget window is `windowMs` instead of a
 * minute (the same messages per window as `perMinute` a minute would give), account A gets `backlog` messages at
 * once, account B one message every `bEveryMs` while A's backlog runs. The real sendMail handler on Azurite and
 * the bench's sink, `concurrency` invocations in flight as the host's batch.
 *
 * Measured: deferrals and invocations per sent message; how far A's messages went out of their enqueue order
 * (share more than `outOfOrderPlaces` places away); B's enqueue → sent time (p50, p95); how late a message was
 * tried after the `nextAttemptAt` its deferral recorded (max).
 */
import type { DeliveryRecord } from '../../shared/storage/deliveryLedger';
import { DEFAULT_POLICY } from '../../shared/delivery/policy';
import { encodeQueueJson } from '../../shared/message/queueJson';
import { QUEUES } from '../../shared/names';
import { sendMail } from '../../functions/sendMail';
import { InvocationContext } from '../support/azureFunctions';
import { startSendHarness, testAccount } from '../support/sendHarness';
import { sleep, startPump } from './pump';

export interface BacklogOptions {
  connectionString: string;
  port: number;
  backlog: number;
  perMinute: number;
  windowMs: number;
  bEveryMs: number;
  concurrency: number;
  /** Stop after this long, sent or not. */
  maxMs: number;
  outOfOrderPlaces: number;
}

export interface BacklogResult {
  aSent: number;
  bSent: number;
  bEnqueued: number;
  sent: number;
  deferrals: number;
  invocations: number;
  deferralsPerSent: number;
  invocationsPerSent: number;
  outOfOrderShare: number;
  maxDisplacement: number;
  bP50Ms: number;
  bP95Ms: number;
  nextAttemptLateMsMax: number;
  ms: number;
  errors: number;
  firstError?: string;
}

export async function measureBacklog(options: BacklogOptions): Promise<BacklogResult> {
  const harness = await startSendHarness({
    connectionString: options.connectionString,
    accounts: ['a', 'b'].map((id) =>
      testAccount({
        id: `backlog-${id}`,
        port: options.port,
        smtp: { security: 'plain' },
        rateLimit: { messagesPerMinute: options.perMinute, concurrentConnections: 4 },
      }),
    ),
    policy: { ...DEFAULT_POLICY, rateWindowMs: options.windowMs },
  });
  try {
    const { services, runtime } = harness;
    const outbox = runtime.storage.queue(QUEUES.outbox);
    const runId = Date.now().toString(36);
    const aId = (i: number) => `backlog-${runId}-a-${i}`;
    const sentAt = new Map<string, number>();
    const nextAttemptAt = new Map<string, number>();
    let deferrals = 0;
    let lateMax = 0;
    const write = services.ledger.write.bind(services.ledger);
    services.ledger.write = async (row: Omit<DeliveryRecord, 'updatedAt'>) => {
      const etag = await write(row);
      if (etag === undefined) return etag;
      if (row.status === 'sent') sentAt.set(row.id, Date.now());
      if (row.status === 'deferred') {
        deferrals++;
        if (row.nextAttemptAt) nextAttemptAt.set(row.id, Date.parse(row.nextAttemptAt));
      }
      return etag;
    };

    for (let i = 0; i < options.backlog; i += 32) {
      await Promise.all(
        Array.from({ length: Math.min(32, options.backlog - i) }, (_, k) =>
          outbox.sendMessage(
            encodeQueueJson({ id: aId(i + k), account: 'backlog-a', to: ['rcpt@example.com'], subject: `A ${i + k}`, text: 'a' }),
          ),
        ),
      );
    }

    const started = Date.now();
    const bEnqueuedAt = new Map<string, number>();
    let stopB = false;
    const feeder = (async () => {
      for (let i = 0; !stopB; i++) {
        const id = `backlog-${runId}-b-${i}`;
        bEnqueuedAt.set(id, Date.now());
        await outbox.sendMessage(
          encodeQueueJson({ id, account: 'backlog-b', to: ['rcpt@example.com'], subject: `B ${i}`, text: 'b' }),
        );
        await sleep(options.bEveryMs);
      }
    })();

    const aSent = () => [...sentAt.keys()].filter((id) => id.includes('-a-')).length;
    let invocations = 0;
    const pump = startPump(
      outbox,
      async (payload, metadata) => {
        invocations++;
        const id = decodeId(payload);
        const due = id ? nextAttemptAt.get(id) : undefined;
        if (due !== undefined) lateMax = Math.max(lateMax, Date.now() - due);
        await sendMail(
          payload,
          new InvocationContext({
            invocationId: `backlog-${metadata.id}`,
            functionName: 'sendMail',
            triggerMetadata: { ...metadata },
          }),
        );
      },
      {
        concurrency: options.concurrency,
        batchSize: 32,
        visibilityTimeoutSeconds: 300,
        shouldStop: () => aSent() >= options.backlog || Date.now() - started > options.maxMs,
      },
    );
    await pump.done;
    stopB = true;
    await feeder;
    const ms = Date.now() - started;

    // Enqueue order against send order: how many places each A message moved.
    const order = [...sentAt.entries()]
      .filter(([id]) => id.includes('-a-'))
      .sort((x, y) => x[1] - y[1])
      .map(([id]) => Number(id.slice(id.lastIndexOf('-') + 1)));
    // A message still waiting at the end counts as out of order once later ones went out.
    const displacement = order.map((index, place) => Math.abs(index - place));
    const waitingBehind = Array.from({ length: options.backlog }, (_, i) => i).filter(
      (i) => !sentAt.has(aId(i)) && order.some((index) => index > i + options.outOfOrderPlaces),
    ).length;
    const far = displacement.filter((d) => d > options.outOfOrderPlaces).length + waitingBehind;

    const bLatencies = [...bEnqueuedAt.entries()]
      .map(([id, at]) => (sentAt.has(id) ? sentAt.get(id)! - at : undefined))
      .filter((v): v is number => v !== undefined)
      .sort((x, y) => x - y);
    const bWaiting = [...bEnqueuedAt.entries()].filter(([id, at]) => !sentAt.has(id) && Date.now() - at > 10_000).length;
    const all = [...bLatencies, ...Array.from({ length: bWaiting }, () => Infinity)];
    const pct = (p: number) => (all.length ? all[Math.min(all.length - 1, Math.floor(p * all.length))]! : NaN);
    const sent = sentAt.size;
    return {
      aSent: order.length,
      bSent: bLatencies.length,
      bEnqueued: bEnqueuedAt.size,
      sent,
      deferrals,
      invocations,
      deferralsPerSent: deferrals / Math.max(1, sent),
      invocationsPerSent: invocations / Math.max(1, sent),
      outOfOrderShare: far / Math.max(1, options.backlog),
      maxDisplacement: Math.max(0, ...displacement),
      bP50Ms: pct(0.5),
      bP95Ms: pct(0.95),
      nextAttemptLateMsMax: lateMax,
      ms,
      errors: pump.stats.errors,
      ...(pump.stats.firstError ? { firstError: pump.stats.firstError } : {}),
    };
  } finally {
    await harness.stop();
  }
}

function decodeId(payload: unknown): string | undefined {
  try {
    const text = typeof payload === 'string' ? Buffer.from(payload, 'base64').toString('utf8') : JSON.stringify(payload);
    const id = (JSON.parse(text) as { id?: unknown }).id;
    return typeof id === 'string' ? id : undefined;
  } catch {
    return undefined;
  }
}
