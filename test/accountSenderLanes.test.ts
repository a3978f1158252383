/**
 * AccountSender's connections against real servers and real connection slots (Azurite): a burst opens every
 * connection the account is allowed, a connection is kept for as many messages as the server takes, and
 * close() resolves only once the slots are given back.
 */
import assert from 'node:assert/strict';
import { after, afterEach, before, test } from 'node:test';
import type { TableClient } from '@azure/data-tables';
import { startAzurite, type Azurite } from '../local/peers/azurite';
import { startSmtpSink } from '../local/peers/smtpSink';
import { parseAccounts } from '../shared/config';
import { ConnectionSlots } from '../shared/limits/connectionSlots';
import { TABLES } from '../shared/names';
import { AccountSender, type SmtpToken } from '../shared/smtp/accountSender';
import { classifySmtpFailure, type SmtpFailure } from '../shared/smtp/classifyReply';
import { createStorageClients } from '../shared/storage/storageClients';
import { ensureTestCaFiles, loadTestTls } from './support/certs';
import { startScriptedSmtp } from './support/scriptedSmtp';
import { testAccount } from './support/sendHarness';

let azurite: Azurite;
let leases: TableClient;
let tls: Awaited<ReturnType<typeof loadTestTls>>;
let caPath: string;
const cleanups: Array<() => Promise<unknown>> = [];

before(async () => {
  [azurite, tls, { caPath }] = await Promise.all([startAzurite(), loadTestTls(), ensureTestCaFiles()]);
  const storage = createStorageClients({ MailStorage: azurite.connectionString });
  await storage.ensureCreated();
  leases = storage.table(TABLES.leases);
});
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});
after(async () => {
  await azurite?.stop();
});

const TOKEN: SmtpToken = { accessToken: 'lane-token', expiresAt: Date.now() + 3_600_000 };
const TIMEOUTS = { connectionMs: 5_000, greetingMs: 5_000, socketMs: 5_000 };

function senderFor(id: string, port: number, connections: number): { sender: AccountSender; slots: ConnectionSlots } {
  const [account] = parseAccounts([
    testAccount({
      id,
      port,
      smtp: { caFile: caPath },
      rateLimit: { messagesPerMinute: 10_000, concurrentConnections: connections },
    }),
  ]);
  const slots = new ConnectionSlots(leases, id, () => connections, `holder-${id}`);
  // Long idle time: a connection stays open until close(), so the peak counts every connection opened.
  const sender = new AccountSender(account!, slots, { idleMs: 60_000, timeouts: TIMEOUTS });
  return { sender, slots };
}

const mail = (i: number) => ({ from: 'lanes@example.com', to: 'rcpt@example.com', subject: `m${i}`, text: 'x' });

/** acquire → send → release, as the send path does; `ok: false` when no connection came free in time. */
async function sendOnce(sender: AccountSender, message: ReturnType<typeof mail>, maxWaitMs: number) {
  const lane = await sender.acquire(maxWaitMs);
  if (!lane) return { ok: false as const };
  try {
    return { ok: true as const, value: await lane.send(message, TOKEN) };
  } finally {
    lane.release();
  }
}

async function slotRows(id: string): Promise<number> {
  let rows = 0;
  for await (const _ of leases.listEntities({ queryOptions: { filter: `PartitionKey eq 'slots-${id}'` } })) rows++;
  return rows;
}

test('40 sends started at once on an account allowed 4 connections use all 4, and close() gives every slot back before it resolves', async () => {
  const sink = await startSmtpSink({ security: 'starttls', key: tls.key, cert: tls.cert, verifyToken: () => true });
  cleanups.push(() => sink.stop());
  const { sender, slots } = senderFor('burst', sink.port, 4);
  let closed = false;
  cleanups.push(() => (closed ? Promise.resolve() : sender.close()));

  const results = await Promise.all(Array.from({ length: 40 }, (_, i) => sendOnce(sender, mail(i), 20_000)));
  assert.deepEqual(
    results.filter((r) => !r.ok),
    [],
  );
  assert.equal(sink.received.length, 40);
  assert.equal(sink.connectionsPeak, 4, 'every allowed connection was opened');
  assert.equal(sender.openConnections, 4);
  assert.equal(await slotRows('burst'), 4, 'one slot row per connection');

  await sender.close();
  closed = true;
  assert.equal(slots.heldCount, 0);
  assert.equal(await slotRows('burst'), 0, 'no slot row is held once close() has resolved');
});

test('a connection is kept for more than 100 messages', async () => {
  const server = await startScriptedSmtp({ security: 'starttls', key: tls.key, cert: tls.cert });
  cleanups.push(() => server.stop());
  const { sender } = senderFor('long-lived', server.port, 1);
  cleanups.push(() => sender.close());
  for (let i = 0; i < 120; i++) {
    const result = await sendOnce(sender, mail(i), 5_000);
    assert.ok(result.ok, JSON.stringify(result));
  }
  assert.equal(server.accepted.length, 120);
  assert.equal(server.connections, 1, 'one connection for all 120 messages');
});

test('messages waiting for a connection when the server refuses a token do not each present it again', async () => {
  const sink = await startSmtpSink({
    security: 'starttls',
    key: tls.key,
    cert: tls.cert,
    verifyToken: (_user, token) => token !== 'refused-token',
  });
  cleanups.push(() => sink.stop());
  const { sender } = senderFor('refused', sink.port, 1);
  cleanups.push(() => sender.close());
  const refused = { accessToken: 'refused-token', expiresAt: Date.now() + 3_600_000 };
  const outcomes = await Promise.all(
    Array.from({ length: 5 }, async (_, i) => {
      const lane = await sender.acquire(20_000);
      assert.ok(lane);
      try {
        await lane.send(mail(i), refused);
        return 'sent';
      } catch (error) {
        return classifySmtpFailure(error as SmtpFailure).kind;
      } finally {
        lane.release();
      }
    }),
  );
  assert.deepEqual(outcomes, Array(5).fill('auth_rejected'), 'every message learns the token was refused');
  assert.equal(sink.authFailures, 1, 'the server saw the refused token once');

  // A fresh token goes out at once.
  const lane = await sender.acquire(5_000);
  assert.ok(lane);
  try {
    await lane.send(mail(9), TOKEN);
  } finally {
    lane.release();
  }
  assert.equal(sink.received.length, 1);
});
