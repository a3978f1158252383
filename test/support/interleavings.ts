/**
 * Copies of one message id raced through the real pipeline (`deliverMessage`, the real ledger on Azurite, the real
 * AccountSender against a real SMTP server) while fast-check's scheduler decides the order of every storage and
 * SMTP step. Each gated step starts only when the scheduler releases it and runs to its end before the next one is
 * released, so a seed replays the same interleaving. Crash points kill an invocation at a chosen step (nothing the
 * dead instance does afterwards takes effect); the host then retries it, as Azure's queue trigger does.
 *
 * fast-check's scheduler was chosen because it explores orders as a property (shrinking to the smallest failing
 * interleaving, printing a seed and path to replay) instead of a hand-written random scheduler.
 */
import type { TableClient } from '@azure/data-tables';
import fc from 'fast-check';
import { deliverMessage, type DeliveryServices } from '../../shared/delivery/deliverMessage';
import { decodeQueueJson, encodeQueueJson } from '../../shared/message/queueJson';
import type { ResultEvent } from '../../shared/message/resultEvent';
import { DeliveryLedger } from '../../shared/storage/deliveryLedger';
import { OutboxQueue } from '../../shared/message/outboxQueue';
import type { QueueClient } from '@azure/storage-queue';
import type { AccountSender } from '../../shared/smtp/accountSender';
import { GraphFailure } from '../../shared/graph/graphFailure';
import { GraphSender } from '../../shared/graph/graphSender';
import type { GraphStandIn } from '../../local/peers/graphStandIn';

/** Passing trouble on each transport: nothing was taken, try again later. */
const SMTP_451 = Object.assign(new Error('451 4.3.0 Temporary server error'), {
  code: 'EMESSAGE',
  responseCode: 451,
  response: '451 4.3.0 Temporary server error, please try again later',
  command: 'DATA',
});
const GRAPH_503 = new GraphFailure('503 Service Unavailable', {
  kind: 'http',
  status: 503,
  graphCode: 'ServiceUnavailable',
  retryAfterMs: 1_000,
  maybeDelivered: false,
});
import type { SmtpSink } from '../../local/peers/smtpSink';

export const CRASH_POINTS = [
  'none',
  'afterClaim',
  'after250',
  'afterEvent',
  'beforeOutcome',
  'storageError',
  'deferStorageError',
] as const;
export type CrashPoint = (typeof CRASH_POINTS)[number];

/** Passing trouble once per run: no connection free for one copy, or one SMTP `451` (both defer a copy). */
export const TROUBLES = ['none', 'laneBusy', 'smtp451'] as const;
export type Trouble = (typeof TROUBLES)[number];

export interface RaceCase {
  /** Which transport the account uses: SMTP through the real sender, or Graph sendMail to the stand-in. */
  transport: 'smtp' | 'graph';
  copies: number;
  crash: CrashPoint;
  trouble: Trouble;
  /** The `sending` claim's life: 0 makes every claim look dead to the other copies at once. */
  leaseMs: number;
}

export interface RaceOutcome {
  id: string;
  mails: number;
  finalStatus: string | undefined;
  finalCode: string | undefined;
  finalReason: string | undefined;
  events: ResultEvent[];
  crashed: boolean;
  /** Invocations the host gave up on (dequeue count used up): the poison queue. */
  poisoned: number;
  /** Copies still waiting when the run stopped. */
  leftWaiting: number;
}

/** Thrown into a dead instance: product code may catch it, but every later step of that instance throws too. */
class Crash extends Error {
  constructor() {
    super('simulated crash');
  }
}

interface Instance {
  dead: boolean;
  unrecorded: DeliveryServices['unrecorded'];
  unsentClaims: DeliveryServices['unsentClaims'];
}

interface Invocation {
  queueMessageId: string;
  dequeueCount: number;
  payload: string;
  instance: Instance;
}

const MAX_WAVES = 12;
const MAX_DEQUEUE = 5;

/**
 * The scheduler's `act`: after releasing one step, wait until that step's chain reaches its next gate or its I/O
 * ends, so that steps take effect one at a time in the order the scheduler chose.
 */
export async function settlingAct(release: () => Promise<void>): Promise<void> {
  const mark = counters.scheduled;
  await release();
  await new Promise((resolve) => setImmediate(resolve));
  for (let i = 0; i < 20_000 && counters.scheduled === mark && counters.inFlight > 0; i++)
    await new Promise((resolve) => setImmediate(resolve));
}

/** Steps handed to the scheduler so far, and steps whose I/O is running (for settlingAct). */
const counters = { scheduled: 0, inFlight: 0 };

export function raceCaseArbitrary(copies: { min: number; max: number } = { min: 2, max: 4 }): fc.Arbitrary<RaceCase> {
  return fc.record({
    transport: fc.constantFrom('smtp' as const, 'graph' as const),
    copies: fc.integer(copies),
    crash: fc.constantFrom(...CRASH_POINTS),
    trouble: fc.constantFrom(...TROUBLES),
    leaseMs: fc.constantFrom(0, 60_000),
  });
}

/**
 * Runs one case under scheduler `s`: `race.copies` copies of a fresh message id enqueued at once, then every copy
 * the pipeline re-enqueues (deferrals), and the host's retries of failed invocations, in waves until nothing is left.
 */
/** Where mails of a run arrive: the SMTP server, or the Graph stand-in; counted by the text of the message. */
export interface MailCounter {
  count(marker: string): number;
}

export const smtpCounter = (sink: SmtpSink): MailCounter => ({
  count: (marker) => sink.received.filter((mail) => mail.raw.includes(marker)).length,
});
export const graphCounter = (standIn: GraphStandIn): MailCounter => ({
  count: (marker) => standIn.received.filter((mail) => mail.raw.includes(marker)).length,
});

export async function runRace(
  s: fc.Scheduler,
  race: RaceCase,
  base: DeliveryServices,
  mailbox: MailCounter,
  accountId: string,
  id: string,
): Promise<RaceOutcome> {
  let crashUsed = race.crash === 'none';
  let troubleUsed = race.trouble === 'none';
  const troubleNow = (trouble: Trouble): boolean => {
    if (troubleUsed || race.trouble !== trouble) return false;
    troubleUsed = true;
    return true;
  };
  const events: ResultEvent[] = [];
  let copySequence = 0;
  const copies: Array<{ messageId: string; text: string; deleted: boolean }> = [];
  const marker = `race [${id}]`;
  const mailsBefore = mailbox.count(marker);

  /** Waits for the scheduler, then runs `op` to its end; a dead instance never gets past its gate. */
  const step = async <T>(instance: Instance, label: string, op: () => Promise<T>): Promise<T> => {
    counters.scheduled++;
    await s.schedule(Promise.resolve(label), label);
    if (instance.dead) throw new Crash();
    counters.inFlight++;
    try {
      return await op();
    } finally {
      counters.inFlight--;
    }
  };
  const crashNow = (instance: Instance, point: CrashPoint): boolean => {
    if (crashUsed || race.crash !== point) return false;
    crashUsed = true;
    if (point !== 'storageError' && point !== 'deferStorageError') instance.dead = true;
    return true;
  };

  const servicesFor = (instance: Instance): DeliveryServices => {
    const table = gatedTable(base.ledger.table, instance, step, (entity, phase) => {
      const status = (entity as { status?: string }).status;
      if (phase === 'after' && status === 'sending' && crashNow(instance, 'afterClaim')) throw new Crash();
      if (phase === 'before' && (status === 'sent' || status === 'failed')) {
        if (crashNow(instance, 'beforeOutcome')) throw new Crash();
        if (status === 'sent' && crashNow(instance, 'storageError'))
          throw Object.assign(new Error('simulated storage outage'), { statusCode: 503 });
      }
      // A deferral that cannot be written (after a 451 on a claimed message, or before any claim).
      if (phase === 'before' && status === 'deferred' && crashNow(instance, 'deferStorageError'))
        throw Object.assign(new Error('simulated storage outage'), { statusCode: 503 });
    });
    const outbox = {
      sendMessage: (text: string) =>
        step(instance, 'outbox.send', async () => {
          const messageId = `copy-${id}-${++copySequence}`;
          copies.push({ messageId, text, deleted: false });
          return { messageId, popReceipt: `receipt-${messageId}` };
        }),
      deleteMessage: (messageId: string) =>
        step(instance, 'outbox.delete', async () => {
          const copy = copies.find((c) => c.messageId === messageId);
          if (copy) copy.deleted = true;
          return {};
        }),
    };
    const results = {
      sendMessage: (text: string) =>
        step(instance, 'results.send', async () => {
          events.push(decodeQueueJson<ResultEvent>(text));
          if (crashNow(instance, 'afterEvent')) throw new Crash();
          return {};
        }),
    };
    return {
      ...base,
      ledger: new DeliveryLedger(table),
      outbox: new OutboxQueue(outbox as unknown as QueueClient),
      results: results as unknown as DeliveryServices['results'],
      unrecorded: instance.unrecorded,
      unsentClaims: instance.unsentClaims,
      senderFor: (account) =>
        gatedSender(base.senderFor(account), instance, step, {
          after250: () => crashNow(instance, 'after250'),
          trouble: troubleNow,
        }),
      graphSenderFor: (account) =>
        gatedSender(base.graphSenderFor(account), instance, step, {
          after250: () => crashNow(instance, 'after250'),
          trouble: troubleNow,
        }),
    };
  };

  const fresh = (): Instance => ({ dead: false, unrecorded: new Map(), unsentClaims: new Map() });
  const payload = encodeQueueJson({ id, account: accountId, to: ['race@example.com'], subject: id, text: `race [${id}]` });
  let pending: Invocation[] = Array.from({ length: race.copies }, (_, i) => ({
    queueMessageId: `q-${id}-${i}`,
    dequeueCount: 1,
    payload,
    instance: fresh(),
  }));
  let poisoned = 0;
  const runPolicy = { ...base.policy, sendingLeaseMs: race.leaseMs };

  for (let wave = 0; wave < MAX_WAVES && pending.length > 0; wave++) {
    const seenCopies = copies.length;
    const runs = pending.map(async (invocation) => {
      const services = { ...servicesFor(invocation.instance), policy: runPolicy };
      try {
        await deliverMessage(services, invocation.payload, {
          queueMessageId: invocation.queueMessageId,
          dequeueCount: invocation.dequeueCount,
        });
        return invocation.instance.dead ? { invocation, failed: true } : { invocation, failed: false };
      } catch {
        return { invocation, failed: true };
      }
    });
    const ended = await s.waitFor(Promise.all(runs));
    pending = [];
    for (const { invocation, failed } of ended) {
      if (!failed) continue;
      // The host retries the same queue message; a dead process comes back as a new instance.
      if (invocation.dequeueCount >= MAX_DEQUEUE) poisoned++;
      else
        pending.push({
          ...invocation,
          dequeueCount: invocation.dequeueCount + 1,
          instance: invocation.instance.dead ? fresh() : invocation.instance,
        });
    }
    for (const copy of copies.slice(seenCopies)) {
      if (!copy.deleted) pending.push({ queueMessageId: copy.messageId, dequeueCount: 1, payload: copy.text, instance: fresh() });
    }
    while (counters.inFlight > 0) await new Promise((resolve) => setImmediate(resolve));
  }

  const row = await base.ledger.get(id);
  return {
    id,
    mails: mailbox.count(marker) - mailsBefore,
    finalStatus: row?.status,
    finalCode: row?.code,
    finalReason: row?.reason,
    events: events.filter((e) => e.id === id),
    crashed: crashUsed && race.crash !== 'none',
    poisoned,
    leftWaiting: pending.length,
  };
}

/** What must hold after every run; returns the broken rules (empty: all hold). */
export function brokenInvariants(race: RaceCase, outcome: RaceOutcome): string[] {
  const broken: string[] = [];
  if (outcome.mails > 1) broken.push(`${outcome.mails} mails for one id`);
  if (outcome.finalStatus !== 'sent' && outcome.finalStatus !== 'failed')
    broken.push(
      `no final ledger row (status ${outcome.finalStatus ?? 'none'} ${outcome.finalCode ?? ''}: ${outcome.finalReason ?? ''}; ${outcome.leftWaiting} left waiting, ${outcome.poisoned} poisoned)`,
    );
  if (outcome.finalStatus === 'sent' && outcome.mails !== 1) broken.push(`ledger says sent, server has ${outcome.mails} mails`);
  if (outcome.finalStatus && !outcome.events.some((e) => e.status === outcome.finalStatus))
    broken.push(
      `no result event for the final row (${outcome.finalStatus}); events: ${outcome.events.map((e) => e.status).join(',') || 'none'}`,
    );
  if (outcome.mails === 0 && outcome.finalStatus === 'sent') broken.push('sent without a mail');
  if (race.crash === 'after250' && outcome.crashed && outcome.finalStatus === 'sent')
    broken.push('an attempt that died after the 250 was recorded as sent');
  if (race.crash === 'after250' && outcome.crashed && outcome.finalCode !== 'delivery_unconfirmed')
    broken.push(`an attempt that died after the 250 ended ${outcome.finalStatus}/${outcome.finalCode}, not delivery_unconfirmed`);
  // Only a claim that looks dead (lease 0, or its instance died) may end a message "unconfirmed": a storage error
  // on a write is not a death, and the retry on the same instance knows what it did.
  const claimMayLookDead = race.leaseMs === 0 || ['afterClaim', 'after250', 'afterEvent', 'beforeOutcome'].includes(race.crash);
  if (!claimMayLookDead && outcome.finalCode === 'delivery_unconfirmed')
    broken.push(`ended delivery_unconfirmed with ${outcome.mails} mail(s), though no attempt died (${race.crash})`);
  return broken;
}

type Step = <T>(instance: Instance, label: string, op: () => Promise<T>) => Promise<T>;

/** The ledger's table with each call gated; `hook` may throw a crash before or after a write. */
function gatedTable(
  table: TableClient,
  instance: Instance,
  step: Step,
  hook: (entity: object, phase: 'before' | 'after') => void,
): TableClient {
  const write =
    (name: 'createEntity' | 'updateEntity' | 'upsertEntity') =>
    (entity: object, ...rest: unknown[]) =>
      step(instance, `ledger.${name}`, async () => {
        hook(entity, 'before');
        const result = await (table[name] as (...args: unknown[]) => Promise<unknown>).call(table, entity, ...rest);
        hook(entity, 'after');
        return result;
      });
  return new Proxy(table, {
    get(target, property, receiver) {
      if (property === 'getEntity')
        return (...args: unknown[]) =>
          step(instance, 'ledger.get', () => (target.getEntity as (...a: unknown[]) => Promise<unknown>).apply(target, args));
      if (property === 'createEntity' || property === 'updateEntity' || property === 'upsertEntity') return write(property);
      if (property === 'deleteEntity')
        return (...args: unknown[]) =>
          step(instance, 'ledger.delete', () =>
            (target.deleteEntity as (...a: unknown[]) => Promise<unknown>).apply(target, args),
          );
      return Reflect.get(target, property, receiver) as unknown;
    },
  });
}

/** A transport's real sender with each lane's send gated; `after250` may kill the instance once the server took it. */
function gatedSender<S extends AccountSender | GraphSender>(
  sender: S,
  instance: Instance,
  step: Step,
  faults: { after250: () => boolean; trouble: (trouble: Trouble) => boolean },
): S {
  const graph = sender instanceof GraphSender;
  return new Proxy(sender, {
    get(target, property, receiver) {
      if (property !== 'acquire') return Reflect.get(target, property, receiver) as unknown;
      return async (maxWaitMs: number) => {
        if (faults.trouble('laneBusy')) return undefined;
        const lane = await target.acquire(maxWaitMs);
        if (!lane) return lane;
        return {
          release: () => lane.release(),
          send: async (...args: unknown[]) => {
            const sent = await step(instance, graph ? 'graph.send' : 'smtp.send', () => {
              if (faults.trouble('smtp451')) return Promise.reject(graph ? GRAPH_503 : SMTP_451);
              return (lane.send as (...a: unknown[]) => Promise<unknown>)(...args);
            });
            if (faults.after250()) throw new Crash();
            return sent;
          },
        };
      };
    },
  });
}
