/**
 * The producer examples in examples/, each run as a producer would run it, against the messages function served
 * by the local Functions host (or, for the queue example, Azurite's queue service with a SAS), and delivered by
 * the real send path to the SMTP sink. An example whose toolchain is missing here is skipped with a notice:
 * PowerShell (pwsh) is not installed on the machines this suite runs on, so its example is not run.
 */
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { cp, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { QueueSASPermissions } from '@azure/storage-queue';
import { startAzurite, type Azurite } from '../local/peers/azurite';
import { parseReceived, type SmtpSink } from '../local/peers/smtpSink';
import { setApp } from '../shared/app';
import { QUEUES } from '../shared/names';
import { serveFunctions } from './support/functionsHost';
import { startSendHarness, testAccount, type SendHarness, startTokenSink } from './support/sendHarness';

const REPO = fileURLToPath(new URL('..', import.meta.url));
const EXAMPLES = path.join(REPO, 'examples');
const KEY = 'examples-function-key';
const run = promisify(execFile);

function installed(command: string, args: string[] = ['--version']): boolean {
  try {
    execFileSync(command, args, { stdio: 'ignore', timeout: 30_000 });
    return true;
  } catch {
    return false;
  }
}
const skipUnless = (command: string) => (installed(command) ? false : `${command} is not installed on this machine`);

let azurite: Azurite;
let sink: SmtpSink;
let harness: SendHarness;
let host: Awaited<ReturnType<typeof serveFunctions>>['runner'];

before(async () => {
  let served: Awaited<ReturnType<typeof serveFunctions>>;
  [azurite, sink, served] = await Promise.all([
    startAzurite(),
    startTokenSink(),
    // As registered and with a function key required, as in Azure.
    serveFunctions({ names: ['messages'], env: { LOCAL_FUNCTION_KEY: KEY } }),
  ]);
  host = served.runner;
  harness = await startSendHarness({
    connectionString: azurite.connectionString,
    accounts: [testAccount({ id: 'main', port: sink.port, default: true })],
  });
  setApp({ ...harness.runtime, publicBaseUrl: host.url });
});

after(async () => {
  setApp(undefined);
  await harness?.stop();
  await host?.stop();
  await sink?.stop();
  await azurite?.stop();
});

/** The environment every example reads; no other setting of this machine leaks into the run. */
function producerEnv(id: string, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    DOTNET_CLI_TELEMETRY_OPTOUT: '1',
    DOTNET_NOLOGO: '1',
    OUTBOX_URL: host.url,
    OUTBOX_FUNCTION_KEY: KEY,
    MAIL_TO: 'someone@example.com',
    MAIL_ID: id,
    MAIL_SUBJECT: `Example ${id}`,
    ...extra,
  };
}

/** Drains the outbox and checks that the example's message reached the mailbox and the ledger says sent. */
async function assertDelivered(id: string): Promise<void> {
  await harness.drain();
  const mail = sink.received.find((m) => m.raw.includes(`Subject: Example ${id}`));
  assert.ok(mail, `${id} did not reach the SMTP server`);
  assert.deepEqual(mail.envelope.to, ['someone@example.com']);
  const parsed = await parseReceived(mail);
  assert.equal(parsed.text?.trim(), 'Sent through oauth-outbox.');
  assert.equal((await harness.ledger(id))?.status, 'sent');
}

describe('producer examples', { timeout: 240_000 }, () => {
  test('curl: examples/curl/post-message.sh', { skip: skipUnless('curl') }, async () => {
    const { stdout } = await run('sh', [path.join(EXAMPLES, 'curl/post-message.sh')], { env: producerEnv('curl-1') });
    assert.match(stdout, /^\{"id":"curl-1"\}\n$/);
    await assertDelivered('curl-1');
  });

  test('curl: a refused message exits non-zero with the reasons', { skip: skipUnless('curl') }, async () => {
    await assert.rejects(
      run('sh', [path.join(EXAMPLES, 'curl/post-message.sh')], { env: producerEnv('curl-2', { MAIL_TO: 'not an address' }) }),
      (error: { code: number; stdout: string }) => {
        assert.equal(error.code, 22);
        assert.match(error.stdout, /"reasons":"to\[0\]: is not a valid email address"/);
        return true;
      },
    );
  });

  test('Python, POST /api/messages: examples/python/post_message.py', { skip: skipUnless('python3') }, async () => {
    const { stdout } = await run('python3', [path.join(EXAMPLES, 'python/post_message.py')], {
      env: producerEnv('python-1'),
    });
    assert.equal(stdout, 'Accepted: python-1\n');
    await assertDelivered('python-1');
  });

  test('Python, a refused message: the reasons, and a non-zero exit', { skip: skipUnless('python3') }, async () => {
    await assert.rejects(
      run('python3', [path.join(EXAMPLES, 'python/post_message.py')], {
        env: producerEnv('python-2', { MAIL_TO: 'not an address' }),
      }),
      (error: { code: number; stderr: string }) => {
        assert.equal(error.code, 1);
        assert.match(error.stderr, /^Refused \(400\): to\[0\]: is not a valid email address$/m);
        return true;
      },
    );
  });

  test(
    'Python, straight onto the queue with a SAS: examples/python/enqueue_sas.py',
    { skip: skipUnless('python3') },
    async () => {
      const outbox = harness.runtime.storage.queue(QUEUES.outbox);
      const sasUrl = await outbox.generateSasUrl({
        permissions: QueueSASPermissions.parse('a'),
        expiresOn: new Date(Date.now() + 3_600_000),
      });
      const { stdout } = await run('python3', [path.join(EXAMPLES, 'python/enqueue_sas.py')], {
        env: producerEnv('python-sas-1', { OUTBOX_QUEUE_SAS_URL: sasUrl }),
      });
      assert.equal(stdout, 'Enqueued: python-sas-1\n');
      await assertDelivered('python-sas-1');
    },
  );

  test('C#, built with dotnet from the BCL only: examples/csharp/PostMessage', { skip: skipUnless('dotnet') }, async () => {
    // Built in a copy, so that no bin/ or obj/ appears in the repository.
    const dir = await mkdtemp(path.join(os.tmpdir(), 'outbox-csharp-'));
    try {
      await cp(path.join(EXAMPLES, 'csharp/PostMessage'), dir, { recursive: true });
      const env = producerEnv('dotnet-1');
      await run('dotnet', ['build', '--nologo', '-v', 'quiet', '-o', path.join(dir, 'out')], { cwd: dir, env, timeout: 180_000 });
      const { stdout } = await run('dotnet', [path.join(dir, 'out', 'PostMessage.dll')], { env, timeout: 60_000 });
      assert.equal(stdout, 'Accepted: dotnet-1\n');
      await assertDelivered('dotnet-1');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('PowerShell: examples/powershell/Send-OutboxMessage.ps1', { skip: skipUnless('pwsh') }, async () => {
    const { stdout } = await run(
      'pwsh',
      [
        '-NoProfile',
        '-File',
        path.join(EXAMPLES, 'powershell/Send-OutboxMessage.ps1'),
        '-OutboxUrl',
        host.url,
        '-To',
        'someone@example.com',
        '-Subject',
        'Example powershell-1',
        '-Id',
        'powershell-1',
      ],
      { env: producerEnv('powershell-1') },
    );
    assert.match(stdout, /Accepted: powershell-1/);
    await assertDelivered('powershell-1');
  });
});
