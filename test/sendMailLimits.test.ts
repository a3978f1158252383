/**
 * Provider limits hold across instances: two send-path runtimes sharing one account and one storage account
 * never open more connections or send more messages per window than the account allows, and defer the surplus
 * instead of failing it. Below them, the two shared limiters on their own: RateBudget and ConnectionSlots.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { TableClient } from '@azure/data-tables';
import { startAzurite, type Azurite } from '../local/peers/azurite';
import { pollOnce } from '../local/host/queueTrigger';
import { deliverMessage, type DeliveryOutcome } from '../shared/delivery/deliverMessage';
import { ConnectionSlots } from '../shared/limits/connectionSlots';
import { RateBudget } from '../shared/limits/rateBudget';
import { QUEUES, TABLES } from '../shared/names';
import { createStorageClients } from '../shared/storage/storageClients';
import { peakInWindow, startBudgetSmtp, type BudgetSmtp } from './support/budgetSmtp';
import { startSendHarness, testAccount, TRIGGER, type SendHarness } from './support/sendHarness';

let azurite: Azurite;
let leases: TableClient;

before(async () => {
  azurite = await startAzurite();
  const storage = createStorageClients({ MailStorage: azurite.connectionString });
  await storage.ensureCreated();
  leases = storage.table(TABLES.leases);
});
after(async () => {
  await azurite?.stop();
});

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('two instances sending for one account', () => {
  const ACCOUNT = 'shared-box';
  const MESSAGES = 40;
  let sink: BudgetSmtp;
  const instances: SendHarness[] = [];
  let usage: { sent: number; summary: string } | undefined;

  before(async () => {
    sink = await startBudgetSmtp({ maxConnections: 2, messagesPerWindow: 20, windowMs: 60_000, latencyMs: 50 });
    const account = testAccount({
      id: ACCOUNT,
      port: sink.port,
      smtp: { security: 'plain' },
      rateLimit: { messagesPerMinute: 20, concurrentConnections: 2 },
    });
    // Two runtimes in one process stand for two instances: each has its own token cache, SMTP pool and limiter
    // objects; they share only what instances share, the storage account.
    instances.push(await startSendHarness({ connectionString: azurite.connectionString, accounts: [account], install: false }));
    instances.push(
      await startSendHarness({
        connectionString: azurite.connectionString,
        accounts: [account],
        install: false,
        clearQueues: false,
      }),
    );
  });
  after(async () => {
    for (const instance of instances) await instance.stop();
    await sink?.stop();
  });

  test('never exceed the connection and message budget, and defer the surplus instead of failing it', async () => {
    const ids = Array.from({ length: MESSAGES }, (_, i) => `limits-${i}`);
    for (const id of ids) await instances[0]!.enqueue({ id, account: ACCOUNT, to: ['rcpt@example.com'], subject: id, text: 'x' });

    const outcomes: DeliveryOutcome[] = [];
    let stop = false;
    // The Functions host keeps a message invisible while its invocation runs: a long visibility timeout stands for that.
    const trigger = { ...TRIGGER, visibilityTimeoutSeconds: 30 };
    const run = async (instance: SendHarness) => {
      const outbox = instance.runtime.storage.queue(QUEUES.outbox);
      const poison = instance.runtime.storage.queue(QUEUES.poison);
      while (!stop) {
        const seen = await pollOnce(
          outbox,
          poison,
          async (payload, meta) => {
            outcomes.push(
              await deliverMessage(instance.services, payload, {
                queueMessageId: meta.id,
                dequeueCount: meta.dequeueCount,
                ...(meta.insertionTime ? { insertedAt: new Date(meta.insertionTime) } : {}),
              }),
            );
          },
          trigger,
        );
        if (seen === 0) await sleep(100);
      }
    };
    const ledger = instances[0]!.services.ledger;
    /** Every message sent, or deferred until the budget's window has room again. */
    const settled = async () => {
      const rows = await Promise.all(ids.map((id) => ledger.get(id)));
      const waiting = (nextAttemptAt?: string) => Date.parse(nextAttemptAt ?? '') > Date.now() + 20_000;
      return rows.every((row) => row?.status === 'sent' || (row?.status === 'deferred' && waiting(row.nextAttemptAt)));
    };
    const started = Date.now();
    const loops = instances.map(run);
    try {
      while (Date.now() - started < 30_000 && !(await settled())) await sleep(250);
    } finally {
      stop = true;
      await Promise.all(loops);
    }
    const elapsed = Date.now() - started;

    const rows = await Promise.all(ids.map((id) => ledger.get(id)));
    const sent = rows.filter((row) => row?.status === 'sent');
    const deferred = rows.filter((row) => row?.status === 'deferred');
    const codes = [...new Set(deferred.map((row) => row!.code))].sort();
    const waitedForConnection = instances
      .flatMap((i) => i.logs)
      .filter((line) => /mail\.deferred.*connection_limit/.test(line)).length;
    const summary = `sent ${sent.length}, deferred ${deferred.length} (${codes.join(', ')}), ${waitedForConnection} deferred for a connection on the way, accepted ${sink.accepted}, peak connections ${sink.connectionsPeak}, ${elapsed} ms`;

    assert.ok(elapsed < 60_000, 'all of it inside one budget window');
    assert.ok(sink.connectionsPeak <= 2, `never more than 2 connections: ${summary}`);
    assert.ok(sink.accepted <= 20, `at most 20 messages in the window: ${summary}`);
    assert.ok(sink.peakInWindow(60_000) <= 20);
    assert.equal(sink.throttleReplies, 0, `the server never had to throttle: ${summary}`);
    assert.equal(sent.length, sink.accepted, summary);
    assert.equal(sent.length + deferred.length, MESSAGES, `every message accounted for: ${summary}`);
    assert.ok(
      codes.every((code) => code === 'rate_limited' || code === 'connection_limit'),
      `deferred for the limits only: ${summary}`,
    );
    assert.ok(
      deferred.every((row) => row!.attempts === 0),
      'waiting for the budget is not an attempt',
    );
    assert.ok(!outcomes.includes('failed'), summary);
    usage = { sent: sent.length, summary };
  });

  test('use the whole budget: 20 of 20 messages in the window', () => {
    assert.ok(usage, 'the run above finished');
    assert.equal(usage.sent, 20, usage.summary);
  });
});

describe('RateBudget', () => {
  test('two instances together stay within 10 messages per 2 s in every sliding window', async (t) => {
    const limits = () => ({ perWindow: 10, windowMs: 2_000 });
    // The guard covers the time from a grant to the server's count, here to the caller's clock reading after the
    // storage write. The default for a 2 s window (20 ms) is below the jitter of a write on a busy test machine;
    // a one-minute window, the only one the app uses, gets 600 ms.
    const options = { guardMs: 200 };
    const budgets = [new RateBudget(leases, 'rate-unit', limits, options), new RateBudget(leases, 'rate-unit', limits, options)];
    const granted: number[] = [];
    let refused = 0;
    const started = Date.now();
    const until = started + 3 * 2_000;
    // Each instance keeps several callers waiting for budget, as concurrent invocations do.
    const caller = async (budget: RateBudget) => {
      while (Date.now() < until) {
        const grant = await budget.acquire(1, Math.max(1, until - Date.now()));
        if (grant.ok) {
          granted.push(Date.now());
        } else {
          refused++;
          await sleep(Math.min(grant.retryAfterMs, Math.max(0, until - Date.now())));
        }
      }
    };
    await Promise.all(budgets.flatMap((budget) => Array.from({ length: 6 }, () => caller(budget))));
    granted.sort((a, b) => a - b);
    const inTime = granted.filter((at) => at < until);
    const peak = peakInWindow(granted, 2_000);
    t.diagnostic(`granted ${inTime.length} in three windows, peak ${peak} in any 2 s, ${refused} refusals`);
    assert.ok(peak <= 10, `peak ${peak} in a 2 s window`);
    assert.ok(refused > 0, 'callers over the budget were told to wait');
  });

  test('two instances grant exactly the budget of a window between them, and grant it again once the window has passed', async () => {
    // Counts, not a clock: how much of the budget a busy machine uses over time is measured by the benchmark.
    const limits = () => ({ perWindow: 10, windowMs: 2_000 });
    const options = { guardMs: 200 };
    const budgets = [
      new RateBudget(leases, 'rate-count', limits, options),
      new RateBudget(leases, 'rate-count', limits, options),
    ];
    // Eight callers per instance at once, none willing to wait.
    const round = () => Promise.all(budgets.flatMap((budget) => Array.from({ length: 8 }, () => budget.acquire(1, 0))));

    const first = await round();
    assert.equal(first.filter((grant) => grant.ok).length, 10, 'the whole budget and no more');
    const refusals = first.filter((grant) => !grant.ok);
    assert.equal(refusals.length, 6);
    for (const refusal of refusals) {
      assert.match(refusal.reason, /budget of 10 messages per 2 s is used up/);
      // Until the oldest grant leaves the window: at most the window, a bucket (20 ms) and the guard.
      assert.ok(refusal.retryAfterMs > 0 && refusal.retryAfterMs <= 2_220, `retry after ${refusal.retryAfterMs} ms`);
    }

    await sleep(2_000 + 20 + 200 + 100); // every grant of the first round has left the window
    const second = await round();
    assert.equal(second.filter((grant) => grant.ok).length, 10, 'the budget is back once the window has passed');
  });
});

describe('ConnectionSlots', () => {
  test('two holders share a limit of 2: a third acquire fails, renewed leases stay held, a release frees a slot', async () => {
    const holders = ['instance-a', 'instance-b', 'instance-c'].map(
      (holder) => new ConnectionSlots(leases, 'slots-unit', () => 2, holder, { leaseMs: 300, renewEveryMs: 100 }),
    );
    const [a, b, c] = holders as [ConnectionSlots, ConnectionSlots, ConnectionSlots];
    try {
      const first = await a.tryAcquire();
      const second = await b.tryAcquire();
      assert.deepEqual([first, second].sort(), [0, 1]);
      assert.equal(await c.tryAcquire(), undefined, 'both slots are held');
      assert.equal(await a.tryAcquire(), undefined, 'a holder cannot take more either');

      await sleep(500); // longer than the lease: the holders renew theirs
      assert.equal(await c.tryAcquire(), undefined, 'renewed leases stay held');

      await b.release(second!);
      assert.equal(await c.tryAcquire(), second, 'the released slot is free again');
      assert.equal(b.heldCount, 0);
    } finally {
      await Promise.all(holders.map((holder) => holder.releaseAll()));
    }
  });

  test('a lease its holder stopped renewing is taken over, and the holder is told it lost it', async () => {
    const lost: number[] = [];
    // A holder that stalls: its lease runs out long before it tries to renew.
    const stalled = new ConnectionSlots(leases, 'slots-takeover', () => 1, 'stalled', { leaseMs: 200, renewEveryMs: 600 });
    stalled.onLost = (slot) => lost.push(slot);
    const other = new ConnectionSlots(leases, 'slots-takeover', () => 1, 'other', { leaseMs: 5_000 });
    try {
      assert.equal(await stalled.tryAcquire(), 0);
      assert.equal(await other.tryAcquire(), undefined, 'held');
      await sleep(300);
      assert.equal(await other.tryAcquire(), 0, 'the expired lease is taken over');
      await sleep(500);
      assert.deepEqual(lost, [0], 'the stalled holder learns at its next renewal that the slot is gone');
    } finally {
      await stalled.releaseAll();
      await other.releaseAll();
    }
  });
});

describe('two account ids of one mailbox', () => {
  test('never hold more SMTP connections together than the mailbox allows', async () => {
    const box = await startBudgetSmtp({ maxConnections: 10, messagesPerWindow: 1_000, windowMs: 60_000, latencyMs: 100 });
    const accounts = ['alias-one', 'alias-two'].map((id) =>
      testAccount({
        id,
        user: 'Shared.Mailbox@example.com',
        port: box.port,
        smtp: { security: 'plain' },
        rateLimit: { messagesPerMinute: 1_000, concurrentConnections: 2 },
      }),
    );
    const h = await startSendHarness({ connectionString: azurite.connectionString, accounts, install: false });
    try {
      for (let i = 0; i < 12; i++)
        for (const account of ['alias-one', 'alias-two'])
          await h.enqueue({ id: `alias-${account}-${i}`, account, to: ['rcpt@example.com'], subject: 'x', text: 'x' });
      await h.drain(60_000);
      assert.equal(box.accepted, 24);
      assert.equal(box.connectionsPeak, 2, 'the two ids share the mailbox limit of 2 (and both slots were used)');
    } finally {
      await h.stop();
      await box.stop();
    }
  });
});
