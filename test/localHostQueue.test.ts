/**
 * The local host's queue trigger on a real queue (Azurite), against what the Functions host does: a message is
 * kept hidden for as long as its invocation runs (the lease is renewed), a failed one comes back after
 * host.json's visibilityTimeout, the next batch is fetched at newBatchThreshold rather than when the whole batch
 * is done, and failures end in the poison queue after maxDequeueCount tries.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { QueueClient } from '@azure/storage-queue';
import { sendMail } from '../functions/sendMail';
import type { FunctionDefinition } from '../local/host/functionRegistry';
import type { HostJson } from '../local/host/hostSettings';
import { startRunner, type Runner } from '../local/host/runner';
import { startAzurite, type Azurite } from '../local/peers/azurite';
import { type SmtpSink } from '../local/peers/smtpSink';
import { QUEUES, STORAGE_CONNECTION } from '../shared/names';
import { encodeQueueJson } from '../shared/message/queueJson';
import { FAST_POLICY, startSendHarness, testAccount, type SendHarness, startTokenSink } from './support/sendHarness';

let azurite: Azurite;

before(async () => {
  azurite = await startAzurite();
});
after(async () => {
  await azurite?.stop();
});

/** host.json's queue section with fast polling, on top of what a test sets. */
function hostJson(queues: NonNullable<NonNullable<HostJson['extensions']>['queues']>): HostJson {
  return { extensions: { queues: { maxPollingInterval: '00:00:00.2', messageEncoding: 'base64', ...queues } } };
}

function worker(queueName: string, handler: (payload: unknown, dequeueCount: number) => Promise<void>): FunctionDefinition {
  return {
    kind: 'storageQueue',
    name: 'worker',
    queueName,
    connection: 'Work',
    handler: async (payload, context) => handler(payload, Number(context.triggerMetadata?.dequeueCount)),
  };
}

async function poll<T>(what: string, probe: () => Promise<T | undefined> | T | undefined, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await sleep(100);
  }
}

describe('queue trigger', () => {
  test('queue trigger: %setting% queue name, base64, dequeue count, retries, then the poison queue', async () => {
    const calls: { payload: unknown; dequeueCount: unknown }[] = [];
    const definitions: FunctionDefinition[] = [
      {
        kind: 'storageQueue',
        name: 'worker',
        queueName: '%WORK_QUEUE%',
        connection: 'Work',
        handler: async (payload, context) => {
          calls.push({ payload, dequeueCount: context.triggerMetadata?.dequeueCount });
          if ((payload as { fail?: boolean }).fail) throw new Error('always fails');
        },
      },
    ];
    const hostJson: HostJson = {
      extensions: {
        queues: {
          batchSize: 4,
          visibilityTimeout: '00:00:01',
          maxDequeueCount: 2,
          maxPollingInterval: '00:00:00.2',
          messageEncoding: 'base64',
        },
      },
    };
    const env = { WORK_QUEUE: 'runner-test', Work: azurite.connectionString };
    const queue = new QueueClient(azurite.connectionString, 'runner-test');
    const poison = new QueueClient(azurite.connectionString, 'runner-test-poison');
    const runner = await startRunner({ host: '127.0.0.1', port: 0, env, definitions, hostJson, log: () => {} });
    try {
      assert.ok(
        runner.summary.includes('worker: queueTrigger (runner-test, poison queue runner-test-poison)'),
        runner.summary.join('\n'),
      );
      await queue.sendMessage(encodeQueueJson({ n: 1 }));
      await queue.sendMessage(encodeQueueJson({ n: 2, fail: true }));
      const poisoned = await poll('the failing message in the poison queue', async () => {
        const { peekedMessageItems } = await poison.peekMessages();
        return peekedMessageItems[0];
      });
      assert.deepEqual(JSON.parse(Buffer.from(poisoned.messageText, 'base64').toString()), { n: 2, fail: true });
      const tries = calls.map((c) => JSON.stringify([c.payload, c.dequeueCount])).sort();
      assert.deepEqual(tries, ['[{"n":1},1]', '[{"n":2,"fail":true},1]', '[{"n":2,"fail":true},2]']);
      assert.equal((await queue.getProperties()).approximateMessagesCount, 0);
    } finally {
      await runner.stop();
    }
  });

  test('a failed message comes back after visibilityTimeout, not at once and not after the lease', async () => {
    const starts: number[] = [];
    let failedAt = 0;
    const definitions = [
      worker('retry-delay', async () => {
        starts.push(Date.now());
        if (starts.length === 1) {
          failedAt = Date.now();
          throw new Error('first try fails');
        }
      }),
    ];
    const env = { Work: azurite.connectionString };
    const runner = await startRunner({
      host: '127.0.0.1',
      port: 0,
      env,
      definitions,
      hostJson: hostJson({ visibilityTimeout: '00:00:02' }),
      log: () => {},
    });
    // The cause of the retry's timing: the host sets the failed message's visibility to visibilityTimeout.
    const updates: Array<{ queue: string; seconds: number | undefined }> = [];
    const updateMessage = QueueClient.prototype.updateMessage;
    QueueClient.prototype.updateMessage = function (this: QueueClient, ...args: Parameters<QueueClient['updateMessage']>) {
      updates.push({ queue: this.name, seconds: args[3] });
      return updateMessage.apply(this, args);
    };
    try {
      await new QueueClient(azurite.connectionString, 'retry-delay').sendMessage(encodeQueueJson({ n: 1 }));
      await poll('the second try', () => (starts.length >= 2 ? true : undefined));
      const delay = starts[1]! - failedAt;
      assert.ok(delay >= 1_900, `not at once: tried again ${delay} ms after the failure`);
      assert.deepEqual(
        updates.filter((u) => u.queue === 'retry-delay' && u.seconds === 2),
        [{ queue: 'retry-delay', seconds: 2 }],
        'the failed message was made visible again after visibilityTimeout, not left to its lease',
      );
    } finally {
      QueueClient.prototype.updateMessage = updateMessage;
      await runner.stop();
    }
  });

  test('newBatchThreshold: one slow message does not hold back the others', async () => {
    let releaseSlow: () => void = () => {};
    const slowReleased = new Promise<void>((resolve) => (releaseSlow = resolve));
    const done: string[] = [];
    let running = 0;
    let mostRunning = 0;
    const definitions = [
      worker('threshold', async (payload) => {
        const { name } = payload as { name: string };
        mostRunning = Math.max(mostRunning, ++running);
        try {
          if (name === 'slow') await slowReleased;
          else await sleep(50);
          done.push(name);
        } finally {
          running--;
        }
      }),
    ];
    const queue = new QueueClient(azurite.connectionString, 'threshold');
    await queue.createIfNotExists();
    await queue.sendMessage(encodeQueueJson({ name: 'slow' }));
    const fast = ['a', 'b', 'c', 'd', 'e', 'f'];
    for (const name of fast) await queue.sendMessage(encodeQueueJson({ name }));
    const runner = await startRunner({
      host: '127.0.0.1',
      port: 0,
      env: { Work: azurite.connectionString },
      definitions,
      hostJson: hostJson({ batchSize: 2, newBatchThreshold: 1 }),
      log: () => {},
    });
    try {
      await poll(
        'every fast message done while the slow one runs',
        () => (done.length === fast.length ? true : undefined),
        10_000,
      );
      assert.deepEqual([...done].sort(), fast);
      assert.ok(!done.includes('slow'));
      releaseSlow();
      await poll('the slow message done', () => (done.includes('slow') ? true : undefined));
      assert.ok(mostRunning <= 2 + 1, `at most batchSize + newBatchThreshold at once, saw ${mostRunning}`);
    } finally {
      releaseSlow();
      await runner.stop();
    }
  });
});

describe('a send slower than the message lease', () => {
  const LEASE_SECONDS = 2;
  const REPLY_DELAY_MS = 5_000;
  let sink: SmtpSink;
  let harness: SendHarness;
  let runner: Runner;
  const invocations: number[] = [];

  before(async () => {
    sink = await startTokenSink({ replyDelayMs: REPLY_DELAY_MS });
    harness = await startSendHarness({
      connectionString: azurite.connectionString,
      accounts: [testAccount({ id: 'slow', port: sink.port })],
      // SMTP timeouts longer than the slow reply; the send itself must succeed.
      policy: {
        ...FAST_POLICY,
        sendingLeaseMs: 30_000,
        smtpTimeouts: { connectionMs: 5_000, greetingMs: 5_000, socketMs: 15_000 },
      },
    });
    // sendMail as functions/sendMail.ts registers it, counting its invocations.
    const definitions: FunctionDefinition[] = [
      {
        kind: 'storageQueue',
        name: 'sendMail',
        queueName: QUEUES.outbox,
        connection: STORAGE_CONNECTION,
        handler: async (item, context) => {
          invocations.push(Number(context.triggerMetadata?.dequeueCount));
          await sendMail(item, context);
        },
      },
    ];
    runner = await startRunner({
      host: '127.0.0.1',
      port: 0,
      env: { [STORAGE_CONNECTION]: azurite.connectionString },
      definitions,
      // A visibilityTimeout shorter than the send, as well: it is the retry delay, not how long a message is held.
      hostJson: hostJson({ visibilityTimeout: '00:00:01', messageEncoding: 'none' }),
      messageLeaseSeconds: LEASE_SECONDS,
      log: () => {},
    });
  });

  after(async () => {
    await runner?.stop();
    await harness?.stop();
    await sink?.stop();
  });

  test('is delivered once, by one invocation: the lease is renewed while it runs', { timeout: 30_000 }, async () => {
    const started = Date.now();
    await harness.enqueue({ id: 'slow-send', account: 'slow', to: ['rcpt@example.com'], subject: 'slow', text: 'x' });
    await poll(
      'the ledger to say sent',
      async () => ((await harness.ledger('slow-send'))?.status === 'sent' ? true : undefined),
      20_000,
    );
    const took = Date.now() - started;
    assert.ok(took > LEASE_SECONDS * 1000, `the send took ${took} ms, longer than the ${LEASE_SECONDS} s lease`);
    // Past the point where an unrenewed message would have been handed out again, and a little longer.
    await sleep(LEASE_SECONDS * 1000);
    assert.deepEqual(invocations, [1], 'one invocation, on the first dequeue');
    assert.equal(sink.received.length, 1, 'one delivery');
    const outbox = harness.runtime.storage.queue(QUEUES.outbox);
    assert.equal((await outbox.getProperties()).approximateMessagesCount, 0, 'the message was deleted');
  });
});
