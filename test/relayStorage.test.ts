/**
 * "No 250 before both writes": what a device is told when storage fails, when the relay dies, and when it is
 * stopped, checked against what is really in mail-mime and on mail-outbox afterwards.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startAzurite, type Azurite } from '../local/peers/azurite';
import { composeMime, deviceTransport, queuedId, sendMime, SmtpDialogue } from './support/relayDevice';
import { relayStorage, spawnRelayProcess, startTestRelay, testRelayConfig, type TestRelay } from './support/relayHarness';
import { blobStore, type MimeStore } from '../relay/mimeStore';
import { startRelay } from '../relay/startRelay';
import { createLogger } from '../shared/log/logger';
import { CONTAINERS } from '../shared/names';

const PASSWORD = 'device password';
const DEVICE = { user: 'scanner', password: PASSWORD, account: 'demo', allowedFrom: ['scanner@contoso.test'] };
const ENVELOPE = { from: 'scanner@contoso.test', to: ['alice@fabrikam.test'] };
const MB = 1024 * 1024;

const mime = (attachmentBytes: number) =>
  composeMime({
    from: 'scanner@contoso.test',
    to: 'alice@fabrikam.test',
    subject: 'Scan',
    text: 'Scan attached.',
    attachments: [{ filename: 'scan.pdf', content: randomBytes(attachmentBytes) }],
  });

/** Up to the start of DATA on a logged-in connection. */
async function openData(port: number): Promise<SmtpDialogue> {
  const smtp = await SmtpDialogue.connect({ port });
  assert.equal((await smtp.openAndLogin('scanner', PASSWORD)).code, 235);
  assert.equal((await smtp.command('MAIL FROM:<scanner@contoso.test>')).code, 250);
  assert.equal((await smtp.command('RCPT TO:<alice@fabrikam.test>')).code, 250);
  assert.equal((await smtp.command('DATA')).code, 354);
  return smtp;
}

/** Splits at a line boundary, so that each half can be dot-stuffed on its own. */
function halves(raw: Buffer): [Buffer, Buffer] {
  const middle = raw.indexOf('\r\n', Math.floor(raw.length / 2)) + 2;
  return [raw.subarray(0, middle), raw.subarray(middle)];
}

async function waitFor(condition: () => Promise<boolean> | boolean, what: string, timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

describe('relay: storage failures are a 451, and the retry is queued once', () => {
  let azurite: Azurite;
  let dataDir: string;
  let relay: TestRelay;
  let storage: ReturnType<typeof relayStorage>;

  before(async () => {
    // On disk, so that a restart on the same ports finds the container and the queue again.
    dataDir = await mkdtemp(path.join(os.tmpdir(), 'relay-azurite-'));
    azurite = await startAzurite({ location: dataDir });
    relay = await startTestRelay(azurite.connectionString, [DEVICE]);
    storage = relayStorage(azurite.connectionString);
  });
  after(async () => {
    await relay?.close();
    await azurite?.stop();
    await rm(dataDir, { recursive: true, force: true });
  });

  for (const { name, bytes } of [
    { name: 'a small message (one upload at the dot)', bytes: 50_000 },
    { name: 'a large message (blocks staged during DATA)', bytes: 9 * MB },
  ]) {
    it(`storage down during DATA of ${name}: 451; the device's retry once storage is back: exactly one queued message`, async () => {
      await storage.clear();
      const raw = await mime(bytes);
      const [first, second] = halves(raw);
      const smtp = await openData(relay.port);
      try {
        await smtp.writeBody(first);
        await azurite.stop();
        await smtp.writeBody(second);
        const reply = await smtp.finishData(60_000);
        assert.equal(reply.code, 451, reply.text);
        assert.equal(reply.text, '451 4.3.0 The message could not be stored; nothing was queued, please try again later');
      } finally {
        smtp.end();
      }
      azurite = await startAzurite({
        location: dataDir,
        blobPort: azurite.blobPort,
        queuePort: azurite.queuePort,
        tablePort: azurite.tablePort,
      });
      assert.equal(await storage.count(), 0, 'nothing was queued by the refused attempt');

      const info = await sendMime(await deviceTransport({ port: relay.port, user: 'scanner', pass: PASSWORD }), raw, ENVELOPE);
      const id = queuedId(info.response);
      const messages = await storage.messages();
      assert.deepEqual(
        messages.map((m) => m.id),
        [id],
      );
      assert.deepEqual(await storage.blobNames(), [messages[0]!.mime.blob.slice('mail-mime/'.length)]);
      assert.ok((await storage.blob(messages[0]!.mime.blob)).body.equals(raw));
      const deferred = relay.logs.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.outcome === 'deferred');
      assert.equal(deferred.at(-1)?.reason, 'storage_unavailable');
    });
  }

  it('a failed enqueue after the blob upload is a 451 and leaves no blob behind', async () => {
    await storage.clear();
    await storage.queue.delete();
    try {
      await assert.rejects(
        sendMime(await deviceTransport({ port: relay.port, user: 'scanner', pass: PASSWORD }), await mime(1000), ENVELOPE),
        (error: Error & { responseCode?: number }) => error.responseCode === 451,
      );
      assert.deepEqual(await storage.blobNames(), [], 'the uploaded blob was removed again');
      const deferred = relay.logs.map((l) => JSON.parse(l) as Record<string, unknown>).findLast((l) => l.outcome === 'deferred');
      assert.match(String(deferred?.error), /^queue: /, 'logged as a failed enqueue');
    } finally {
      await storage.queue.createIfNotExists();
    }
  });
});

describe('relay: the order of the writes', () => {
  it('the blob is committed before the queue message names it, so the send path never meets a missing blob', async () => {
    const azurite = await startAzurite();
    const storage = relayStorage(azurite.connectionString);
    const seen: boolean[] = [];
    const real = blobStore(storage.container, storage.queue);
    // The real store, asked at each enqueue whether the blob its message names is already there.
    const store: MimeStore = {
      ...real,
      async enqueue(message) {
        const name = message.mime.blob.slice(`${CONTAINERS.mime}/`.length);
        seen.push(await storage.container.getBlockBlobClient(name).exists());
        return real.enqueue(message);
      },
    };
    const logs: string[] = [];
    const relay = await startRelay({
      config: await testRelayConfig(azurite.connectionString, [DEVICE]),
      log: createLogger((_level, line) => logs.push(line)),
      store,
    });
    try {
      await store.ensureCreated();
      const port = relay.ports.starttls ?? relay.port;
      await sendMime(await deviceTransport({ port, user: 'scanner', pass: PASSWORD }), await mime(2000), ENVELOPE);
      assert.deepEqual(seen, [true], 'one enqueue, after the blob was there');
    } finally {
      await relay.close();
      await azurite.stop();
    }
  });
});

describe('relay process: killed or stopped', () => {
  let azurite: Azurite;
  let storage: ReturnType<typeof relayStorage>;

  before(async () => {
    azurite = await startAzurite();
    storage = relayStorage(azurite.connectionString);
    await storage.clear();
  });
  after(async () => {
    await azurite?.stop();
  });

  it('killed in the middle of DATA: the device gets no 250, nothing is queued and no blob is visible', async () => {
    const relay = await spawnRelayProcess(await testRelayConfig(azurite.connectionString, [DEVICE]));
    try {
      const raw = await mime(12 * MB);
      const smtp = await openData(relay.port);
      await smtp.writeBody(raw.subarray(0, raw.indexOf('\r\n', 9 * MB) + 2));
      // Wait until the relay has staged at least one block of this message, then kill it.
      await waitFor(async () => {
        for await (const _ of storage.container.listBlobsFlat({ includeUncommitedBlobs: true })) return true;
        return false;
      }, 'a staged block');
      relay.kill('SIGKILL');
      const reply = await smtp.reply();
      assert.equal(reply.code, 0, `the connection closed without a reply (got: ${reply.text})`);
      assert.equal((await relay.exited).signal, 'SIGKILL');
      assert.equal(await storage.count(), 0, 'nothing queued');
      assert.deepEqual(await storage.blobNames(), [], 'no committed blob');
    } finally {
      await relay.stop();
    }
  });

  it('SIGTERM: a message in DATA is finished and queued; idle connections get 421; health turns 503; no new connections', async () => {
    await storage.clear();
    const relay = await spawnRelayProcess(await testRelayConfig(azurite.connectionString, [DEVICE]));
    try {
      const idle = await SmtpDialogue.connect({ port: relay.port });
      assert.equal((await idle.command('EHLO idle.test')).code, 250);
      const raw = await mime(200_000);
      const [first, second] = halves(raw);
      const busy = await openData(relay.port);
      await busy.writeBody(first);

      relay.kill('SIGTERM');
      const goodbye = await idle.reply();
      assert.equal(goodbye.code, 421);
      assert.match(goodbye.text, /^421 4\.3\.2 The relay is restarting/);
      await waitFor(async () => (await fetch(`http://127.0.0.1:${relay.healthPort}/health`)).status === 503, 'health 503');
      await assert.rejects(SmtpDialogue.connect({ port: relay.port }), /ECONNREFUSED/);

      await busy.writeBody(second);
      const reply = await busy.finishData();
      assert.equal(reply.code, 250, reply.text);
      const id = queuedId(reply.text);
      const quit = await busy.command('QUIT');
      assert.equal(quit.code, 421, 'after its message the connection is closed too');

      assert.deepEqual(await relay.exited, { code: 0, signal: null });
      const queued = await storage.message(id);
      assert.ok(queued);
      assert.ok((await storage.blob(queued.mime.blob)).body.equals(raw));
      assert.ok(relay.logs.some((l) => l.includes('"relay.stopped"')));
    } finally {
      await relay.stop();
    }
  });
});
