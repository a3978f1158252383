/**
 * A message the host gives up on (sendMail threw on each of its tries) is not silent: its last try logs
 * `mail.poisoned` and marks the ledger row `poisoned` with how to put it back, `npm run poison` lists it with that
 * row, and `npm run poison -- --retry` puts it back on the outbox, where it is sent once the cause is gone.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { readHostJson } from '../local/host/hostSettings';
import { startAzurite, type Azurite } from '../local/peers/azurite';
import type { SmtpSink } from '../local/peers/smtpSink';
import { MAX_DEQUEUE_COUNT } from '../shared/delivery/poisonedMessage';
import { observeLogs } from '../shared/log/logger';
import { QUEUES } from '../shared/names';
import { DeliveryLedger } from '../shared/storage/deliveryLedger';
import { startSendHarness, startTokenSink, testAccount, type SendHarness } from './support/sendHarness';

const run = promisify(execFile);
const root = path.resolve(import.meta.dirname, '..');

test("MAX_DEQUEUE_COUNT is host.json's maxDequeueCount", () => {
  const host = readHostJson() as { extensions?: { queues?: { maxDequeueCount?: number } } };
  assert.equal(host.extensions?.queues?.maxDequeueCount, MAX_DEQUEUE_COUNT);
});

describe('a message the host gives up on', () => {
  let azurite: Azurite;
  let sink: SmtpSink;
  let harness: SendHarness;
  /** While true, every claim of the ledger loses (as if other copies kept changing the row): sendMail throws. */
  let contended = true;
  const logs: string[] = [];
  let stopObserving: () => void;

  class ContendedLedger extends DeliveryLedger {
    override async write(record: Parameters<DeliveryLedger['write']>[0]): Promise<string | undefined> {
      if (contended && record.status === 'sending') return undefined;
      return super.write(record);
    }
  }

  before(async () => {
    azurite = await startAzurite();
    sink = await startTokenSink();
    harness = await startSendHarness({
      connectionString: azurite.connectionString,
      accounts: [testAccount({ id: 'main', port: sink.port })],
      ledger: (table) => new ContendedLedger(table),
    });
    stopObserving = observeLogs((_level, line) => logs.push(line));
  });
  after(async () => {
    stopObserving?.();
    await harness?.stop();
    await sink?.stop();
    await azurite?.stop();
  });

  async function poison(args: string[]) {
    try {
      const { stdout } = await run(
        process.execPath,
        ['--import', 'tsx', 'local/cli/poison.ts', ...args, '--connection-string', azurite.connectionString],
        { cwd: root },
      );
      return { code: 0, stdout };
    } catch (error) {
      const e = error as { code?: number; stdout?: string; stderr?: string };
      return { code: e.code ?? -1, stdout: `${e.stdout ?? ''}${e.stderr ?? ''}` };
    }
  }

  test('its last try logs mail.poisoned and marks the row, which says where it is and how to put it back', async () => {
    await harness.enqueue({ id: 'poison-1', to: ['a@example.com'], subject: 'stuck', text: 'x' });
    await harness.drain(30_000);
    const poisonQueue = harness.runtime.storage.queue(QUEUES.poison);
    assert.equal((await poisonQueue.getProperties()).approximateMessagesCount, 1, 'the host moved it to the poison queue');

    const line = logs.find((l) => l.includes('"event":"mail.poisoned"'));
    assert.ok(line, 'logged');
    assert.match(
      line,
      new RegExp(
        `"messageId":"poison-1".*"dequeueCount":${MAX_DEQUEUE_COUNT}.*"error":"The ledger row of message poison-1 kept changing`,
      ),
    );
    const row = await harness.ledger('poison-1');
    assert.equal(row?.status, 'deferred');
    assert.equal(row?.code, 'poisoned');
    assert.match(row!.reason!, /gave up after 5 failed tries \(the last: The ledger row of message poison-1 kept changing/);
    assert.match(row!.reason!, /lies in queue mail-outbox-poison.*npm run poison -- --retry --id poison-1$/);
    assert.equal(sink.received.length, 0, 'nothing was sent');
  });

  test('npm run poison lists it with the ledger row; --retry puts it back and it is sent once', async () => {
    const listed = await poison([]);
    assert.equal(listed.code, 0, listed.stdout);
    assert.match(listed.stdout, /poison-1 +main +deferred poisoned: The Functions host gave up/);

    contended = false;
    const wrong = await poison(['--retry', '--id', 'no-such-id']);
    assert.equal(wrong.code, 1);
    assert.match(wrong.stdout, /No message with id no-such-id in mail-outbox-poison/);

    const retried = await poison(['--retry', '--id', 'poison-1']);
    assert.equal(retried.code, 0, retried.stdout);
    assert.match(retried.stdout, /Moved 1 message\(s\) back to mail-outbox: poison-1\. Left in mail-outbox-poison: 0\./);
    await harness.drain(30_000);
    const row = await harness.ledger('poison-1');
    assert.equal(row?.status, 'sent');
    assert.equal(sink.received.length, 1);
    assert.match((await poison([])).stdout, /mail-outbox-poison is empty/);
  });

  test('a claim (the mail may have gone out) is not marked: only the log says it', async () => {
    contended = true;
    const ledger = new DeliveryLedger(harness.runtime.storage.table('deliveries'));
    // A claim of an earlier attempt that died after the server's reply, still within its lease.
    await ledger.write({
      id: 'poison-claimed',
      status: 'sending',
      attempts: 1,
      deferrals: 0,
      firstSeenAt: new Date().toISOString(),
      account: 'main',
      queueMessageId: 'another-queue-message',
      sendingUntil: new Date(Date.now() + 3_600_000).toISOString(),
    });
    const { notePoisoned } = await import('../shared/delivery/poisonedMessage');
    const before = logs.length;
    await notePoisoned(
      harness.services,
      Buffer.from(JSON.stringify({ id: 'poison-claimed', to: ['a@example.com'], subject: 's', text: 't' })).toString('base64'),
      { queueMessageId: 'q-1', dequeueCount: 5 },
      new Error('storage went away'),
    );
    assert.ok(logs.slice(before).some((l) => l.includes('"event":"mail.poisoned"') && l.includes('poison-claimed')));
    const row = await harness.ledger('poison-claimed');
    assert.equal(row?.status, 'sending');
    assert.equal(row?.code, undefined);
  });
});
