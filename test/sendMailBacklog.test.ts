/**
 * What a message costs in storage, and how a mailbox's budget is shared: a new message is claimed by insert
 * (no ledger read), result events can be limited, the budget belongs to the mailbox rather than the account id,
 * nothing is claimed before the budget is granted, and messages refused budget get places in a line, in order.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { TableClient } from '@azure/data-tables';
import { startAzurite, type Azurite } from '../local/peers/azurite';
import { createApp } from '../shared/app';
import { deliverMessage } from '../shared/delivery/deliverMessage';
import { ConfigError } from '../shared/errors';
import { encodeQueueJson } from '../shared/message/queueJson';
import { RateBudget } from '../shared/limits/rateBudget';
import { TABLES } from '../shared/names';
import { createStorageClients } from '../shared/storage/storageClients';
import { startBudgetSmtp, type BudgetSmtp } from './support/budgetSmtp';
import { startSendHarness, testAccount, type SendHarness } from './support/sendHarness';
import { countStorageOps } from './bench/storageOps';

let azurite: Azurite;
let leases: TableClient;
let sink: BudgetSmtp;
const cleanups: Array<() => Promise<unknown>> = [];

before(async () => {
  azurite = await startAzurite();
  const storage = createStorageClients({ MailStorage: azurite.connectionString });
  await storage.ensureCreated();
  leases = storage.table(TABLES.leases);
  sink = await startBudgetSmtp({ scope: 'user' });
});
after(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  await sink?.stop();
  await azurite?.stop();
});

async function harness(
  accounts: Array<Omit<Parameters<typeof testAccount>[0], 'port'>>,
  env: Record<string, string> = {},
  seedTokens = true,
): Promise<SendHarness> {
  const h = await startSendHarness({
    connectionString: azurite.connectionString,
    accounts: accounts.map((a) => testAccount({ ...a, port: sink.port, smtp: { security: 'plain' } })),
    env,
    seedTokens,
  });
  cleanups.push(() => h.stop());
  return h;
}

const mail = (id: string, account: string) => ({ id, account, to: ['rcpt@example.com'], subject: id, text: 'x' });

describe('storage operations per message', () => {
  test('a new message is claimed by insert: no ledger read, three operations (claim, outcome, result event)', async () => {
    const h = await harness([{ id: 'ops', rateLimit: { messagesPerMinute: 10_000, concurrentConnections: 2 } }]);
    // Warm: connections, the account's status, the shared budget.
    await h.enqueue(mail('ops-warm', 'ops'));
    await h.drain();
    let reads = 0;
    const get = h.services.ledger.get.bind(h.services.ledger);
    h.services.ledger.get = (id) => {
      reads++;
      return get(id);
    };
    for (let i = 0; i < 20; i++) await h.enqueue(mail(`ops-${i}`, 'ops'));
    let claims = 0;
    const write = h.services.ledger.write.bind(h.services.ledger);
    h.services.ledger.write = (row) => {
      if (!row.etag && row.status === 'sending') claims++;
      return write(row);
    };
    const ops = countStorageOps();
    try {
      await h.drain();
    } finally {
      ops.stop();
    }
    assert.equal(reads, 0, 'no ledger read for a new message');
    assert.equal(claims, 20, 'one insert per message');
    assert.equal(
      ops.counts['table.updateEntity'],
      20,
      `one conditional outcome write per message: ${JSON.stringify(ops.counts)}`,
    );
    assert.equal(ops.counts['queue.sendMessage'], 20, JSON.stringify(ops.counts));
    assert.ok(ops.total() <= 3 * 20 + 4, `at most 3 per message and a connection's slot: ${JSON.stringify(ops.counts)}`);
    assert.equal((await h.ledger('ops-7'))?.status, 'sent');
  });

  test('a message sent again under the same id is a duplicate: the insert conflicts, the row is read, nothing is sent', async () => {
    const h = await harness([{ id: 'dup', rateLimit: { messagesPerMinute: 10_000 } }]);
    await h.enqueue(mail('dup-1', 'dup'));
    await h.drain();
    const before = sink.accepted;
    await h.enqueue(mail('dup-1', 'dup'));
    await h.drain();
    assert.equal(sink.accepted, before, 'not sent twice');
    assert.ok(h.logs.some((line) => line.includes('"mail.duplicate"')));
  });

  test('RESULT_EVENTS=failures publishes failures only; the ledger records every outcome', async () => {
    const h = await harness([{ id: 'quiet' }], { RESULT_EVENTS: 'failures' });
    await h.enqueue(mail('quiet-sent', 'quiet'));
    await h.enqueue(mail('quiet-failed', 'nobody'));
    await h.drain();
    const events = await h.results();
    assert.deepEqual(
      events.map((e) => [e.id, e.status]),
      [['quiet-failed', 'failed']],
    );
    assert.equal((await h.ledger('quiet-sent'))?.status, 'sent');
  });

  test('RESULT_EVENTS=none publishes nothing; an unknown value is refused at start, naming the setting', async () => {
    const h = await harness([{ id: 'silent' }], { RESULT_EVENTS: 'none' });
    await h.enqueue(mail('silent-sent', 'silent'));
    await h.enqueue(mail('silent-failed', 'nobody'));
    await h.drain();
    assert.deepEqual(await h.results(), []);
    assert.equal((await h.ledger('silent-failed'))?.status, 'failed');
    assert.throws(
      () =>
        createApp({ MailStorage: azurite.connectionString, RESULT_EVENTS: 'some' }, { accounts: [], secrets: h.runtime.secrets }),
      (error: unknown) => error instanceof ConfigError && /RESULT_EVENTS/.test(error.message),
    );
  });
});

describe('a mailbox and its budget', () => {
  test('two account ids of one mailbox share its budget: 3 a minute between them, the rest waits unclaimed', async () => {
    const h = await harness([
      { id: 'box-one', user: 'Shared.Box@example.com', rateLimit: { messagesPerMinute: 3 } },
      { id: 'box-two', user: 'shared.box@example.com', rateLimit: { messagesPerMinute: 3 } },
    ]);
    const claimed: Array<{ id: string; status: string }> = [];
    const write = h.services.ledger.write.bind(h.services.ledger);
    h.services.ledger.write = (row) => {
      if (row.status === 'sending') claimed.push({ id: row.id, status: row.status });
      return write(row);
    };
    const before = sink.accepted;
    for (let i = 0; i < 3; i++) {
      await h.enqueue(mail(`box-one-${i}`, 'box-one'));
      await h.enqueue(mail(`box-two-${i}`, 'box-two'));
    }
    await h.runFor(3_000);
    assert.equal(
      sink.accepted - before,
      3,
      `one budget for the mailbox: ${h.logs.filter((l) => l.includes('mail.')).join('\n')}`,
    );
    const rows = await Promise.all(['box-one', 'box-two'].flatMap((a) => [0, 1, 2].map((i) => h.ledger(`${a}-${i}`))));
    const waiting = rows.filter((row) => row?.status === 'deferred');
    assert.equal(waiting.length, 3);
    for (const row of waiting) {
      assert.equal(row!.code, 'rate_limited');
      assert.equal(row!.attempts, 0);
      assert.ok(!claimed.some((p) => p.id === row!.id), `${row!.id} was never claimed: no budget, no sending row`);
    }
  });
});

describe('the waiting line', () => {
  test('a message keeps its place through a deferral for a busy connection, and a newcomer still queues behind it', async () => {
    const h = await harness([{ id: 'keep-place', rateLimit: { messagesPerMinute: 1, concurrentConnections: 1 } }]);
    const deliver = (id: string) =>
      deliverMessage(h.services, encodeQueueJson(mail(id, 'keep-place')), {
        queueMessageId: `q-${id}-${Date.now()}`,
        dequeueCount: 1,
      });
    assert.equal(await deliver('keep-first'), 'sent', 'the window is used up');
    assert.equal(await deliver('keep-a'), 'deferred');
    const placed = await h.ledger('keep-a');
    assert.equal(placed?.code, 'rate_limited');
    assert.ok(placed?.lineSlot, 'a place in the line');

    // Its copy comes back while the only connection is busy elsewhere.
    const sender = h.services.senderFor(h.accounts[0]!);
    const acquire = sender.acquire.bind(sender);
    sender.acquire = async () => undefined;
    try {
      assert.equal(await deliver('keep-a'), 'deferred');
    } finally {
      sender.acquire = acquire;
    }
    const waiting = await h.ledger('keep-a');
    assert.equal(waiting?.code, 'connection_limit');
    assert.equal(waiting?.lineSlot, placed.lineSlot, 'the place is kept');

    assert.equal(await deliver('keep-b'), 'deferred');
    const newcomer = await h.ledger('keep-b');
    assert.ok(Date.parse(newcomer!.lineSlot!) > Date.parse(placed.lineSlot), 'the newcomer queues behind it');
  });

  const limits = () => ({ perWindow: 2, windowMs: 2_000 });

  test('callers refused budget get places one send slot apart, in arrival order; a newcomer queues behind them', async () => {
    const budget = new RateBudget(leases, 'line-order', limits, { guardMs: 200 });
    const grants = await Promise.all(Array.from({ length: 5 }, () => budget.acquire(1, 0, { known: true })));
    assert.equal(grants.filter((g) => g.ok).length, 2);
    const places = grants.flatMap((g) => (g.ok ? [] : [g.reservedAt!]));
    assert.equal(places.length, 3);
    for (let i = 1; i < places.length; i++) assert.equal(places[i]! - places[i - 1]!, budget.slotMs, 'one slot apart');

    const newcomer = await budget.acquire(1, 0, { known: true });
    assert.ok(!newcomer.ok && newcomer.reservedAt === places[2]! + budget.slotMs, 'behind the line');
  });

  test('at its place a holder is served, while a newcomer still queues; an unknown caller is asked for its ticket', async () => {
    const budget = new RateBudget(leases, 'line-holder', limits, { guardMs: 200 });
    const first = await Promise.all(Array.from({ length: 4 }, () => budget.acquire(1, 0, { known: true })));
    const places = first.flatMap((g) => (g.ok ? [] : [g.reservedAt!]));
    assert.equal(places.length, 2);

    const unknown = await budget.acquire(1, 0, { known: false });
    assert.ok(!unknown.ok && unknown.needsTicket, 'told to look up its place instead of being given one');

    await new Promise((resolve) => setTimeout(resolve, Math.max(0, places[0]! - Date.now())));
    const [holder, newcomer] = await Promise.all([
      budget.acquire(1, 1_000, { known: true, reservedAt: places[0]! }),
      budget.acquire(1, 0, { known: true }),
    ]);
    assert.ok(holder.ok, 'the holder goes at its place');
    assert.ok(!newcomer.ok && newcomer.reservedAt! > places[1]!, 'the newcomer queues behind the last place');
  });

  test('without a ticket the budget is a plain sliding window (no line)', async () => {
    const budget = new RateBudget(leases, 'line-none', limits, { guardMs: 200 });
    const grants = await Promise.all(Array.from({ length: 3 }, () => budget.acquire(1, 0)));
    const refused = grants.find((g) => !g.ok);
    assert.ok(refused && !refused.ok && refused.reservedAt === undefined && !refused.needsTicket);
  });
});

describe('a message that waited too long', () => {
  const eightDaysAgo = () => new Date(Date.now() - 8 * 24 * 3_600_000).toISOString();
  const waitingRow = (id: string, account: string) => ({
    id,
    account,
    status: 'deferred' as const,
    attempts: 0,
    deferrals: 40,
    code: 'rate_limited' as const,
    reason: 'The budget is used up.',
    firstSeenAt: eightDaysAgo(),
    nextAttemptAt: new Date().toISOString(),
  });

  test('its copy comes back with budget: the claim finds the old row and fails it as expired, unsent', async () => {
    const h = await harness([{ id: 'old-budget' }]);
    await h.services.ledger.write(waitingRow('old-1', 'old-budget'));
    const before = sink.accepted;
    await h.enqueue(mail('old-1', 'old-budget'));
    await h.drain();
    const row = await h.ledger('old-1');
    assert.equal(row?.status, 'failed');
    assert.equal(row?.code, 'expired');
    assert.equal(sink.accepted, before);
  });

  test('its copy meets an account that cannot send: failed as expired, not deferred again', async () => {
    const h = await harness([{ id: 'old-gate' }], {}, false);
    await h.services.ledger.write(waitingRow('old-2', 'old-gate'));
    await h.enqueue(mail('old-2', 'old-gate'));
    await h.drain();
    const row = await h.ledger('old-2');
    assert.equal(row?.status, 'failed');
    assert.equal(row?.code, 'expired');
    assert.match(row?.reason ?? '', /waited more than 7 days/);
  });
});
