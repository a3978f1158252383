import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { after, describe, it } from 'node:test';
import { TableClient } from '@azure/data-tables';
import { BlobServiceClient } from '@azure/storage-blob';
import { QueueServiceClient } from '@azure/storage-queue';
import { startAzurite, type Azurite } from '../local/peers/azurite';

const isAlive = (pid: number) => {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  // An orphan whose new parent does not reap it lingers as a zombie; it is dead all the same.
  return !/^\d+ \(.*\) Z/.test(readProcStat(pid));
};

const readProcStat = (pid: number) => {
  try {
    return readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return '';
  }
};

const accepts = (port: number) =>
  new Promise<boolean>((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    socket.once('connect', () => resolve(true)).once('error', () => resolve(false));
  }).finally(() => undefined);

async function useAllServices(azurite: Azurite, suffix: string) {
  const queue = QueueServiceClient.fromConnectionString(azurite.connectionString).getQueueClient(`outbox-${suffix}`);
  await queue.create();
  await queue.sendMessage(Buffer.from('{"hello":"queue"}').toString('base64'));
  const { receivedMessageItems } = await queue.receiveMessages();
  assert.equal(receivedMessageItems.length, 1);

  const table = TableClient.fromConnectionString(azurite.connectionString, `status${suffix}`, { allowInsecureConnection: true });
  await table.createTable();
  await table.upsertEntity({ partitionKey: 'p', rowKey: 'r', state: 'ok' });
  assert.equal((await table.getEntity<{ state: string }>('p', 'r')).state, 'ok');

  const container = BlobServiceClient.fromConnectionString(azurite.connectionString).getContainerClient(`mail-${suffix}`);
  await container.create();
  await container.getBlockBlobClient('a.eml').upload('Subject: hi\r\n\r\nbody', 20);
  assert.equal((await container.getBlockBlobClient('a.eml').downloadToBuffer()).toString(), 'Subject: hi\r\n\r\nbody');
}

describe('azurite', () => {
  const started: Azurite[] = [];
  after(async () => {
    await Promise.all(started.map((azurite) => azurite.stop()));
  });

  it('starts in memory on free ports, serves queue, table and blob, and stops without leftovers', async () => {
    const azurite = await startAzurite();
    started.push(azurite);
    assert.equal(new Set([azurite.blobPort, azurite.queuePort, azurite.tablePort]).size, 3);
    assert.match(azurite.connectionString, /^DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;/);
    assert.match(
      azurite.connectionString,
      new RegExp(`QueueEndpoint=http://127\\.0\\.0\\.1:${azurite.queuePort}/devstoreaccount1;`),
    );

    await useAllServices(azurite, 'a');

    await azurite.stop();
    await azurite.stop(); // idempotent
    assert.equal(isAlive(azurite.pid), false, 'the Azurite process is gone');
    for (const port of [azurite.blobPort, azurite.queuePort, azurite.tablePort])
      assert.equal(await accepts(port), false, `port ${port} is closed`);
  });

  it('persists to a data folder when given one', async () => {
    const location = await mkdtemp(path.join(os.tmpdir(), 'azurite-data-'));
    try {
      const azurite = await startAzurite({ location });
      started.push(azurite);
      await useAllServices(azurite, 'b');
      await azurite.stop();
      assert.ok(
        (await readdir(location)).some((name) => name.startsWith('__azurite_db')),
        'database files written',
      );

      // A new Azurite on the same folder (new ports) reads back what the first one stored.
      const restarted = await startAzurite({ location });
      started.push(restarted);
      const table = TableClient.fromConnectionString(restarted.connectionString, 'statusb', { allowInsecureConnection: true });
      assert.equal((await table.getEntity<{ state: string }>('p', 'r')).state, 'ok', 'the table row');
      const blob = BlobServiceClient.fromConnectionString(restarted.connectionString)
        .getContainerClient('mail-b')
        .getBlockBlobClient('a.eml');
      assert.equal((await blob.downloadToBuffer()).toString(), 'Subject: hi\r\n\r\nbody', 'the blob');
      const queue = QueueServiceClient.fromConnectionString(restarted.connectionString).getQueueClient('outbox-b');
      assert.equal((await queue.getProperties()).approximateMessagesCount, 1, 'the queue message');
      await restarted.stop();
    } finally {
      await rm(location, { recursive: true, force: true });
    }
  });

  it('dies with a parent that is killed outright', { skip: process.platform !== 'linux' && 'reads /proc' }, async () => {
    // A parent that starts Azurite, prints its pid and then gets SIGKILL: no 'exit' handler runs.
    const script = `
      import { startAzurite } from ${JSON.stringify(path.resolve('local/peers/azurite.ts'))};
      const azurite = await startAzurite();
      const { readlinkSync } = await import('node:fs');
      console.log(azurite.pid);
      console.log(readlinkSync('/proc/' + azurite.pid + '/cwd'));
      process.kill(process.pid, 'SIGKILL');
    `;
    const { stdout } = await promisify(execFile)(process.execPath, [
      '--import',
      'tsx',
      '--input-type=module',
      '-e',
      script,
    ]).catch((err: { stdout?: string }) => ({ stdout: err.stdout ?? '' }));
    const [pid, scratch] = stdout.trim().split('\n');
    assert.ok(Number(pid) > 0 && scratch, `pid and scratch directory printed: ${JSON.stringify(stdout)}`);
    const deadline = Date.now() + 5_000;
    while (isAlive(Number(pid)) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 100));
    assert.equal(isAlive(Number(pid)), false, 'orphaned Azurite exited');
    assert.equal(existsSync(scratch), false, 'its scratch directory is gone');
  });
});
