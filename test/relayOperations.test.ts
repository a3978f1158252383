/**
 * What an administrator runs before and while a printer is pointed at the relay: `check-config` (the files it
 * names, the devices' senders against the accounts the app published), `send-test` (one request of each kind
 * with the configured storage), and `/health`, which is not `ok` while storage fails.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { BlobServiceClient } from '@azure/storage-blob';
import selfsigned from 'selfsigned';
import { DEV_ACCOUNT_KEY, startAzurite, type Azurite } from '../local/peers/azurite';
import { RELAY_CONTAINERS } from '../shared/names';
import { ALLOWED_SENDERS_BLOB, type AllowedSendersDocument } from '../shared/relay/allowedSenders';
import { spawnRelayProcess, startTestRelay, testRelayConfig } from './support/relayHarness';
import { SmtpDialogue } from './support/relayDevice';
import { isLocalCaller } from '../relay/healthServer';

const run = promisify(execFile);
const root = path.resolve(import.meta.dirname, '..');

/** A storage account nobody answers for: connections to port 9 are refused at once. */
const DEAD_STORAGE = [
  'DefaultEndpointsProtocol=http',
  'AccountName=devstoreaccount1',
  `AccountKey=${DEV_ACCOUNT_KEY}`,
  'BlobEndpoint=http://127.0.0.1:9/devstoreaccount1',
  'QueueEndpoint=http://127.0.0.1:9/devstoreaccount1',
].join(';');

const SCANNER = {
  user: 'scanner',
  password: 'scanner password',
  account: 'scans',
  allowedFrom: ['scanner@contoso.test', 'printer@contoso.test'],
};

let azurite: Azurite;
let dir: string;

before(async () => {
  azurite = await startAzurite();
  dir = await mkdtemp(path.join(os.tmpdir(), 'relay-operations-'));
});
after(async () => {
  await azurite?.stop();
  await rm(dir, { recursive: true, force: true });
});

async function configFile(name: string, config: object): Promise<string> {
  const file = path.join(dir, name);
  await writeFile(file, JSON.stringify(config));
  return file;
}

/** `npm run relay -- <args>`, whatever its exit code. */
async function relayCli(args: string[], env: Record<string, string> = {}) {
  try {
    const { stdout } = await run(process.execPath, ['--import', 'tsx', 'relay/main.ts', ...args], {
      cwd: root,
      env: { ...process.env, ...env },
    });
    return { code: 0, stdout };
  } catch (error) {
    const e = error as { code?: number; stdout?: string; stderr?: string };
    return { code: e.code ?? -1, stdout: `${e.stdout ?? ''}${e.stderr ?? ''}` };
  }
}

describe('relay check-config', () => {
  it('takes the file as an argument and names each file it cannot read', async () => {
    const config = await testRelayConfig(azurite.connectionString, [SCANNER]);
    const file = await configFile('missing-files.json', {
      ...config,
      tls: { certFile: path.join(dir, 'nowhere/fullchain.pem'), keyFile: path.join(dir, 'nowhere/privkey.pem') },
    });
    const { code, stdout } = await relayCli(['check-config', file]);
    assert.equal(code, 1);
    assert.match(stdout, /: valid\.\n/);
    assert.match(stdout, /tls\.certFile: \S+nowhere\/fullchain\.pem does not exist/);
    assert.match(stdout, /tls\.keyFile: \S+nowhere\/privkey\.pem does not exist/);
  });

  it('flags a device whose senders its account does not allow, when storage answers', async () => {
    const document: AllowedSendersDocument = {
      version: 1,
      publishedAt: new Date().toISOString(),
      accounts: { scans: { allowedFrom: ['scanner@contoso.test'], state: 'ready' } },
    };
    const container = BlobServiceClient.fromConnectionString(azurite.connectionString).getContainerClient(
      RELAY_CONTAINERS.senders,
    );
    await container.createIfNotExists();
    const body = JSON.stringify(document);
    await container.getBlockBlobClient(ALLOWED_SENDERS_BLOB).upload(body, body.length);

    const file = await configFile('senders.json', await testRelayConfig(azurite.connectionString, [SCANNER]));
    const { code, stdout } = await relayCli(['check-config', file]);
    assert.equal(code, 1);
    assert.match(stdout, /tls {8}CN=localhost.*expires .* \(in \d+ days\)/);
    assert.match(
      stdout,
      /devices\[0\]\.allowedFrom: account "scans" does not allow printer@contoso\.test \(it allows scanner@contoso\.test\)/,
    );

    const good = await configFile(
      'good.json',
      await testRelayConfig(azurite.connectionString, [{ ...SCANNER, allowedFrom: ['scanner@contoso.test'] }]),
    );
    const passed = await relayCli(['check-config', good]);
    assert.equal(passed.code, 0, passed.stdout);
    assert.match(passed.stdout, /senders {4}checked against the accounts as published/);
  });
});

describe('relay send-test', () => {
  it('proves each kind of request with the configured storage', async () => {
    const file = await configFile('send-test.json', await testRelayConfig(azurite.connectionString, [SCANNER]));
    const { code, stdout } = await relayCli(['send-test'], { RELAY_CONFIG: file });
    assert.equal(code, 0, stdout);
    assert.match(stdout, /^ok {3}blob mail-mime {7}wrote and deleted send-test\/relay-send-test-\S+\.eml$/m);
    assert.match(stdout, /^ok {3}queue mail-outbox {4}added and deleted a message$/m);
    assert.match(stdout, /^ok {3}read relay-senders/m);
    assert.match(stdout, /^ok {3}write relay-activity/m);
    const names: string[] = [];
    for await (const item of BlobServiceClient.fromConnectionString(azurite.connectionString)
      .getContainerClient('mail-mime')
      .listBlobsFlat({ prefix: 'send-test/' }))
      names.push(item.name);
    assert.deepEqual(names, [], 'the test blob is gone');
  });

  it('says which request failed when storage does not answer', async () => {
    const config = await testRelayConfig(DEAD_STORAGE, [SCANNER]);
    const file = await configFile('dead.json', { ...config, storage: { connectionString: DEAD_STORAGE } });
    const { code, stdout } = await relayCli(['send-test'], { RELAY_CONFIG: file });
    assert.equal(code, 1);
    assert.match(stdout, /^FAIL blob mail-mime/m);
    assert.match(stdout, /^FAIL queue mail-outbox/m);
  });
});

describe('relay /health', () => {
  it('answers ok while storage answers, and 503 storage_failing while it does not', async () => {
    const healthy = await startTestRelay(azurite.connectionString, [SCANNER]);
    try {
      const response = await fetch(healthy.healthUrl!);
      assert.equal(response.status, 200);
      assert.deepEqual(await response.json(), { status: 'ok' });
    } finally {
      await healthy.close();
    }
    const broken = await startTestRelay(DEAD_STORAGE, [SCANNER], {
      storage: { connectionString: DEAD_STORAGE, requestTimeoutSeconds: 2 },
    });
    try {
      const response = await fetch(broken.healthUrl!);
      assert.equal(response.status, 503);
      const body = (await response.json()) as { status: string; failing: Array<{ part: string }> };
      assert.equal(body.status, 'storage_failing');
      assert.deepEqual(
        body.failing.map((f) => f.part),
        ['allowed senders'],
      );
    } finally {
      await broken.close();
    }
  });
});

describe('relay certificates', () => {
  it('logs when the storage identity certificate expires, and warns within 30 days', async () => {
    const notBeforeDate = new Date(Date.now() - 86_400_000);
    const pems = await selfsigned.generate([{ name: 'commonName', value: 'oauth-outbox-relay' }], {
      keyType: 'ec',
      curve: 'P-256',
      algorithm: 'sha256',
      notBeforeDate,
      notAfterDate: new Date(notBeforeDate.getTime() + 11 * 86_400_000),
    });
    const identityFile = path.join(dir, 'storage-identity.pem');
    await writeFile(identityFile, `${pems.private}${pems.cert}`);
    const relay = await startTestRelay(DEAD_STORAGE, [SCANNER], {
      storage: {
        blobServiceUrl: 'http://127.0.0.1:9/devstoreaccount1',
        queueServiceUrl: 'http://127.0.0.1:9/devstoreaccount1',
        credential: { type: 'clientCertificate', tenantId: 'contoso', clientId: 'relay', certificateFile: identityFile },
        requestTimeoutSeconds: 2,
      },
    });
    try {
      const warning = relay.logs.find((l) => l.includes('"relay.storage_identity_certificate_expires_soon"'));
      assert.ok(warning, relay.logs.join('\n'));
      assert.match(warning, /"subject":"CN=oauth-outbox-relay".*"daysLeft":(9|10)\b/);
      assert.ok(
        relay.logs.some((l) => l.includes('"relay.tls_certificate"')),
        'the TLS certificate, far from expiry, is an info line',
      );
    } finally {
      await relay.close();
    }
  });
});

describe('relay failed-login blocks', () => {
  it('`unblock` lists the blocked addresses and lifts one, leaving the others blocked', async () => {
    const config = await testRelayConfig(azurite.connectionString, [SCANNER], {
      loginFailures: { maxFailures: 1, windowSeconds: 60, blockSeconds: 600, delayStepMs: 0, maxDelayMs: 0 },
    });
    const relay = await spawnRelayProcess(config);
    const login = async (localAddress: string, password: string) => {
      const smtp = await SmtpDialogue.connect({ port: relay.port, localAddress });
      try {
        return (await smtp.openAndLogin(SCANNER.user, password)).code;
      } finally {
        smtp.end();
      }
    };
    try {
      // The command finds the running relay by the health port of the same configuration file.
      const file = await configFile('unblock.json', { ...config, health: { host: '127.0.0.1', port: relay.healthPort } });
      assert.match((await relayCli(['unblock'], { RELAY_CONFIG: file })).stdout, /No client address has failed logins/);
      for (const address of ['127.0.0.81', '127.0.0.82']) assert.equal(await login(address, 'guess'), 535);
      assert.equal(await login('127.0.0.81', SCANNER.password), 454, 'blocked');

      const listed = await relayCli(['unblock'], { RELAY_CONFIG: file });
      assert.equal(listed.code, 0, listed.stdout);
      assert.match(listed.stdout, /^127\.0\.0\.81 +1 +\d+ s$/m);
      assert.match(listed.stdout, /^127\.0\.0\.82 +1 +\d+ s$/m);

      const lifted = await relayCli(['unblock', '::ffff:127.0.0.81'], { RELAY_CONFIG: file });
      assert.equal(lifted.code, 0, lifted.stdout);
      assert.match(lifted.stdout, /Lifted the failed logins of 127\.0\.0\.81\./);
      assert.ok(relay.logs.some((l) => /"event":"relay\.logins_unblocked".*"address":"127\.0\.0\.81","addresses":1/.test(l)));
      assert.equal(await login('127.0.0.81', SCANNER.password), 235, 'that address logs in again at once');
      assert.equal(await login('127.0.0.82', SCANNER.password), 454, 'the other stays blocked');

      assert.match(
        (await relayCli(['unblock', '--all'], { RELAY_CONFIG: file })).stdout,
        /Lifted the failed logins of 1 address/,
      );
      assert.equal(await login('127.0.0.82', SCANNER.password), 235);

      const noHealth = await configFile('unblock-no-health.json', { ...config, health: undefined });
      const refused = await relayCli(['unblock', '127.0.0.82'], { RELAY_CONFIG: noHealth });
      assert.equal(refused.code, 1);
      assert.match(refused.stdout, /through its health port: add "health"/);
    } finally {
      await relay.stop();
    }
  });

  it("the login routes answer only callers on the relay's own machine", () => {
    assert.ok(isLocalCaller('127.0.0.1', '127.0.0.1'));
    assert.ok(isLocalCaller('::ffff:127.0.0.5', '::ffff:127.0.0.1'));
    assert.ok(isLocalCaller('::1', '::1'));
    assert.ok(isLocalCaller('10.0.0.4', '10.0.0.4'), 'the machine calling its own address');
    assert.ok(!isLocalCaller('172.17.0.1', '172.17.0.2'), "Docker's gateway in front of the container");
    assert.ok(!isLocalCaller('10.0.0.9', '10.0.0.4'));
    assert.ok(!isLocalCaller(undefined, '10.0.0.4'));
    assert.ok(!isLocalCaller('fe80::1', '::1'));
  });

  it('SIGUSR2 lifts them without a restart', async () => {
    const relay = await spawnRelayProcess(
      await testRelayConfig(azurite.connectionString, [SCANNER], {
        loginFailures: { maxFailures: 1, windowSeconds: 60, blockSeconds: 600, delayStepMs: 0, maxDelayMs: 0 },
      }),
    );
    const login = async (password: string) => {
      const smtp = await SmtpDialogue.connect({ port: relay.port, localAddress: '127.0.0.71' });
      try {
        return (await smtp.openAndLogin(SCANNER.user, password)).code;
      } finally {
        smtp.end();
      }
    };
    try {
      assert.equal(await login('guess'), 535);
      assert.equal(await login(SCANNER.password), 454, 'blocked');
      relay.kill('SIGUSR2');
      const deadline = Date.now() + 10_000;
      while (!relay.logs.some((l) => l.includes('"relay.logins_unblocked"'))) {
        if (Date.now() > deadline) assert.fail(`no relay.logins_unblocked line:\n${relay.logs.join('\n')}`);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      assert.equal(await login(SCANNER.password), 235, 'the right password works again at once');
    } finally {
      await relay.stop();
    }
  });
});
