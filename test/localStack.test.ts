/**
 * `npm start` end to end as a newcomer runs it, with the opt-in function key set so that the key travels as it
 * must in Azure: Chromium from the admin page through the local provider's sign-in and consent, three messages
 * (one with an attachment, one invalid), the mailbox, `npm run results`, and Ctrl-C leaving nothing behind.
 * The host emulation on its own is tested in localHost*.test.ts.
 */
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { readdirSync, readFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { QueueClient } from '@azure/storage-queue';
import { simpleParser } from 'mailparser';
import type { Browser } from 'playwright-core';
import { devConnectionString } from '../local/peers/azurite';
import { QUEUES, TABLES } from '../shared/names';
import { createStorageClients } from '../shared/storage/storageClients';
import { DeliveryLedger, type DeliveryRecord } from '../shared/storage/deliveryLedger';
import { encodeQueueJson } from '../shared/message/queueJson';
import { browserTestsSkipped, launchChromium } from './support/chromium';
import { driveLogin } from './support/driveLogin';

const REPO = fileURLToPath(new URL('..', import.meta.url));
const run = promisify(execFile);

const browserSkip = browserTestsSkipped();
const FUNCTION_KEY = 'e2e-local-function-key';

interface Stack {
  child: ChildProcess;
  output: () => string;
  env: NodeJS.ProcessEnv;
  dataDir: string;
  ports: Record<string, number>;
  /** Every process under `npm start`, recorded while it runs. */
  pids: Set<number>;
  exited: Promise<number | null>;
}

describe('npm start', { timeout: 120_000 }, () => {
  let stack: Stack;
  let browser: Browser | undefined;
  let authorized = false;

  before(async () => {
    stack = await startStack();
    if (!browserSkip) browser = await launchChromium();
  });

  after(async () => {
    await browser?.close();
    if (stack) {
      await stopStack(stack);
      await rm(stack.dataDir, { recursive: true, force: true });
    }
  });

  test('prints where everything is and what to do next', () => {
    const out = stack.output();
    assert.match(out, new RegExp(`Mailbox +http://127\\.0\\.0\\.1:${stack.ports.MAILBOX_PORT}/`));
    assert.match(out, /Sign in as demo@example\.com \/ demo/);
    assert.match(
      out,
      new RegExp(`Microsoft Graph +http://127\\.0\\.0\\.1:${stack.ports.GRAPH_PORT}/v1\\.0/users/\\{user\\}/sendMail`),
    );
    assert.match(out, /npm run enqueue -- --to someone@example\.com --subject Hello/);
    assert.match(out, /function keys checked: LOCAL_FUNCTION_KEY is the key/);
    assert.doesNotMatch(out, /[a-z]\.\.(\s|$)/m, 'no doubled full stop');
    assert.ok(
      out.includes(`Admin page: http://127.0.0.1:${stack.ports.OUTBOX_PORT}/api/status?code=${FUNCTION_KEY} `),
      'the admin page with its key',
    );
  });

  test('lists a second demo account that sends through Microsoft Graph', async () => {
    const reply = await fetch(`http://127.0.0.1:${stack.ports.OUTBOX_PORT}/api/accounts?code=${FUNCTION_KEY}`);
    const { accounts } = (await reply.json()) as { accounts: Array<{ id: string; provider: string; transport: string }> };
    assert.deepEqual(
      accounts.map((a) => [a.id, a.provider, a.transport]),
      [
        ['demo', 'custom', 'smtp'],
        ['demo-graph', 'microsoft', 'graph'],
      ],
    );
  });

  test('the Graph demo account signs in the Microsoft way, asking for SMTP.Send and Graph Mail.Send at once', async () => {
    const start = await fetch(authorizeUrlOf(stack, 'demo-graph'), { redirect: 'manual' });
    const scopes = new URL(start.headers.get('location')!).searchParams.get('scope')?.split(' ');
    assert.deepEqual(
      scopes?.filter((s) => s.startsWith('https://')),
      ['https://outlook.office.com/SMTP.Send', 'https://graph.microsoft.com/Mail.Send'],
    );
    await authorizeWithoutBrowser(stack, 'demo-graph');
    const reply = await fetch(`http://127.0.0.1:${stack.ports.OUTBOX_PORT}/api/accounts/demo-graph?code=${FUNCTION_KEY}`);
    const view = (await reply.json()) as { status: { state: string }; graphNotice: string | null };
    assert.deepEqual([view.status.state, view.graphNotice], ['ready', null]);
  });

  test('refuses the admin page and the authorize route without the function key, as Azure does', async () => {
    const base = `http://127.0.0.1:${stack.ports.OUTBOX_PORT}/api`;
    assert.equal((await fetch(`${base}/status`)).status, 401);
    assert.equal((await fetch(`${base}/accounts/demo/authorize`, { redirect: 'manual' })).status, 401);
    assert.equal((await fetch(`${base}/health`)).status, 200, 'anonymous');
  });

  test(
    'authorizes the demo mailbox in Chromium: admin page, Authorize, sign-in, consent, success page',
    { skip: browserSkip },
    async () => {
      const page = await browser!.newPage();
      try {
        // From the page the banner names, through its Authorize link: no shortcut if either is missing.
        const admin = /Admin page: (\S+)/.exec(stack.output())?.[1];
        assert.ok(admin, `the banner names no admin page:\n${stack.output()}`);
        await page.goto(admin);
        await page
          .locator('a, button', { hasText: /^\s*Authori[sz]e\s*$/ })
          .first()
          .click();
        await page.waitForURL(new RegExp(`^http://127\\.0\\.0\\.1:${stack.ports.IDP_PORT}/interaction/`));
        await page.fill('#login', 'demo@example.com');
        await page.fill('#password', 'demo');
        await page.getByRole('button', { name: 'Sign in' }).click();
        await page.getByRole('button', { name: 'Continue' }).click();
        await page.waitForURL(new RegExp(`^http://127\\.0\\.0\\.1:${stack.ports.OUTBOX_PORT}/api/oauth/callback\\?`));
        assert.match(await page.locator('h1').innerText(), /authorized/i);
        assert.match(await page.locator('body').innerText(), /demo@example\.com/);
        authorized = true;
      } finally {
        await page.close();
      }
    },
  );

  test('delivers the two valid messages to the mailbox and fails the invalid one with its reason', async () => {
    if (!authorized) await authorizeWithoutBrowser(stack);
    const attachment = Buffer.from(Array.from({ length: 5000 }, (_, i) => (i * 7) % 256));
    const attachmentPath = path.join(stack.dataDir, 'report.pdf');
    await writeFile(attachmentPath, attachment);

    const enqueue = (...args: string[]) =>
      run('npm', ['run', '--silent', 'enqueue', '--', ...args], { cwd: REPO, env: stack.env });
    const [withAttachment, plain] = await Promise.all([
      enqueue(
        '--to',
        'alice@example.com',
        '--subject',
        'Quarterly report',
        '--text',
        'See the attachment.',
        '--attach',
        attachmentPath,
        '--id',
        'e2e-attachment',
      ),
      enqueue('--to', 'bob@example.com', '--cc', 'carol@example.com', '--subject', 'Plain hello', '--id', 'e2e-plain'),
    ]);
    assert.match(withAttachment.stdout, /Enqueued e2e-attachment on mail-outbox/);
    assert.match(plain.stdout, /Enqueued e2e-plain on mail-outbox/);
    // A producer in another language that got the address wrong: only the function can refuse it.
    await outboxQueue(stack).sendMessage(
      encodeQueueJson({
        id: 'e2e-invalid',
        to: ['not an address'],
        subject: 'Broken',
        attachments: [{ filename: 'x.pdf', path: '/etc/passwd' }],
      }),
    );

    const listed = await poll('two messages in the mailbox', async () => {
      const list = (await (await fetch(`http://127.0.0.1:${stack.ports.MAILBOX_PORT}/messages.json`)).json()) as {
        file: string;
      }[];
      return list.length >= 2 ? list : undefined;
    });
    assert.equal(listed.length, 2);
    const mailbox = await (await fetch(`http://127.0.0.1:${stack.ports.MAILBOX_PORT}/`)).text();
    assert.match(mailbox, /Quarterly report/);
    assert.match(mailbox, /Plain hello/);
    const entries = (await (await fetch(`http://127.0.0.1:${stack.ports.MAILBOX_PORT}/messages.json`)).json()) as {
      file: string;
      subject: string;
      contentType: string;
    }[];
    const withPdf = entries.find((e) => e.subject === 'Quarterly report')!;
    assert.match(withPdf.contentType, /^multipart\/mixed; boundary=/);
    const shown = await (await fetch(`http://127.0.0.1:${stack.ports.MAILBOX_PORT}/messages/${withPdf.file}`)).text();
    assert.match(shown, /<dt>Content-Type<\/dt>\s*<dd>multipart\/mixed; boundary=/, 'the message page shows its content type');

    const mailDir = path.join(stack.dataDir, 'mail');
    const files = (await readdir(mailDir)).filter((f) => f.endsWith('.eml'));
    assert.equal(files.length, 2);
    const parsed = await Promise.all(files.map(async (f) => simpleParser(await readFile(path.join(mailDir, f)))));
    const report = parsed.find((m) => m.subject === 'Quarterly report');
    const hello = parsed.find((m) => m.subject === 'Plain hello');
    assert.ok(report && hello, `subjects: ${parsed.map((m) => m.subject).join(', ')}`);
    assert.equal(report.from?.text, 'demo@example.com');
    assert.equal(addresses(report.to), 'alice@example.com');
    assert.equal(report.text?.trim(), 'See the attachment.');
    assert.equal(report.attachments.length, 1);
    assert.equal(report.attachments[0]?.filename, 'report.pdf');
    assert.equal(report.attachments[0]?.contentType, 'application/pdf');
    assert.deepEqual(report.attachments[0]?.content, attachment);
    assert.equal(hello.from?.text, 'demo@example.com');
    assert.equal(addresses(hello.to), 'bob@example.com');
    assert.equal(addresses(hello.cc), 'carol@example.com');
    assert.equal(hello.attachments.length, 0);

    const ledger = new DeliveryLedger(createStorageClients({ MailStorage: connectionOf(stack) }).table(TABLES.deliveries));
    const invalid = await poll('the invalid message in the ledger', async () => {
      const row = await ledger.get('e2e-invalid');
      return row?.status === 'failed' ? row : undefined;
    });
    assert.equal(invalid.code, 'invalid_message');
    assert.match(invalid.reason ?? '', /to\[0\]: is not a valid email address/);
    assert.match(invalid.reason ?? '', /attachments\[0\]: unknown field\(s\) "path"/);
    const sent = await Promise.all(['e2e-attachment', 'e2e-plain'].map((id) => ledger.get(id)));
    assert.deepEqual(
      sent.map((row: DeliveryRecord | undefined) => row?.status),
      ['sent', 'sent'],
    );
  });

  test('npm run results shows the three outcomes', async () => {
    const { stdout } = await run('npm', ['run', '--silent', 'results', '--', '--json'], { cwd: REPO, env: stack.env });
    const report = JSON.parse(stdout) as {
      deliveries: DeliveryRecord[];
      events: { id: string; status: string; reason?: string }[];
      poisoned: number;
    };
    const status = (id: string) => report.events.find((e) => e.id === id)?.status;
    assert.deepEqual([status('e2e-attachment'), status('e2e-plain'), status('e2e-invalid')], ['sent', 'sent', 'failed']);
    assert.match(report.events.find((e) => e.id === 'e2e-invalid')?.reason ?? '', /not a valid email address/);
    assert.equal(report.deliveries.length, 3);
    assert.equal(report.poisoned, 0);
  });

  test('npm run results --id shows the whole reason, however long', async () => {
    const ledger = new DeliveryLedger(createStorageClients({ MailStorage: connectionOf(stack) }).table(TABLES.deliveries));
    const reason = (await ledger.get('e2e-invalid'))?.reason ?? '';
    assert.ok(reason.length > 200, `a reason longer than a table line: ${reason}`);
    const { stdout } = await run('npm', ['run', '--silent', 'results', '--', '--id', 'e2e-invalid'], {
      cwd: REPO,
      env: stack.env,
    });
    const lines = stdout.split('\n').filter((line) => /^ {2}reason: +/.test(line));
    assert.deepEqual(
      lines.map((line) => line.replace(/^ {2}reason: +/, '')),
      [reason, reason],
      'the ledger and the result event, each whole',
    );
    assert.match(stdout, /^Result event e2e-invalid /m);
  });

  test("the Graph demo account's message reaches the mailbox through the Graph stand-in, and the ledger keeps Graph's answer", async () => {
    const sent = await run(
      'npm',
      [
        'run',
        '--silent',
        'enqueue',
        '--',
        '--account',
        'demo-graph',
        '--to',
        'erin@example.com',
        '--subject',
        'Through Graph',
        '--id',
        'e2e-graph',
      ],
      { cwd: REPO, env: stack.env },
    );
    assert.match(sent.stdout, /Enqueued/);
    await poll('the Graph message in the mailbox', async () => {
      const list = (await (await fetch(`http://127.0.0.1:${stack.ports.MAILBOX_PORT}/messages.json`)).json()) as {
        subject: string;
      }[];
      return list.find((entry) => entry.subject === 'Through Graph');
    });
    const results = await run('npm', ['run', '--silent', 'results', '--', '--id', 'e2e-graph'], { cwd: REPO, env: stack.env });
    assert.match(results.stdout, /202 Accepted request-id=/);
  });

  test('an account added on the status page is authorized and sends without a restart, and its creation is audited', async () => {
    const base = `http://127.0.0.1:${stack.ports.OUTBOX_PORT}/api`;
    const fields = {
      id: 'reports',
      provider: 'custom',
      clientId: 'oauth-outbox-local',
      user: 'demo@example.com',
      issuer: `http://127.0.0.1:${stack.ports.IDP_PORT}`,
      scopes: 'openid email profile offline_access https://outlook.office.com/SMTP.Send',
      smtpHost: '127.0.0.1',
      smtpPort: String(stack.ports.SMTP_PORT),
      smtpSecurity: 'starttls',
      more: JSON.stringify({
        clientAuth: { type: 'secret', secretName: 'demo-client-secret' },
        smtp: { caFile: path.join(stack.dataDir, 'ca', 'ca.pem') },
      }),
    };
    if (browser) {
      const page = await browser.newPage();
      try {
        await page.goto(`${base}/status?code=${FUNCTION_KEY}`);
        await page.locator('summary', { hasText: 'Add an account' }).click();
        const form = page.locator('form:has(input[name="action"][value="create"])');
        for (const [name, value] of Object.entries(fields)) {
          const input = form.locator(`[name="${name}"]`);
          if ((await input.evaluate((node) => node.tagName)) === 'SELECT') await input.selectOption(value);
          else await input.fill(value);
        }
        await form.getByRole('button', { name: 'Create account' }).click();
        await page.waitForURL(/\/api\/status\?.*q=reports/);
        assert.equal(await page.locator('[data-account="reports"]').count(), 1);
        assert.equal(await page.locator('tr[data-audit="create"][data-audit-account="reports"]').count(), 1);
        await page.locator('[data-account="reports"] a', { hasText: /Authori[sz]e/ }).click();
        await page.waitForURL(/\/api\/oauth\/callback\?|\/interaction\//);
        if (page.url().includes('/interaction/')) {
          if (await page.locator('#login').count()) {
            await page.fill('#login', 'demo@example.com');
            await page.fill('#password', 'demo');
            await page.getByRole('button', { name: 'Sign in' }).click();
          }
          const proceed = page.getByRole('button', { name: 'Continue' });
          if (await proceed.count()) await proceed.click();
          await page.waitForURL(/\/api\/oauth\/callback\?/);
        }
        assert.match(await page.locator('h1').innerText(), /authorized/i);
      } finally {
        await page.close();
      }
    } else {
      const { id, more, issuer, scopes, smtpHost, smtpPort, smtpSecurity, ...rest } = fields;
      const extra = JSON.parse(more) as { clientAuth: object; smtp: object };
      const created = await fetch(`${base}/accounts/${id}?code=${FUNCTION_KEY}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({
          ...rest,
          clientAuth: extra.clientAuth,
          oauth: { issuer, scopes: scopes.split(' ') },
          smtp: { ...extra.smtp, host: smtpHost, port: Number(smtpPort), security: smtpSecurity },
        }),
      });
      assert.equal(created.status, 201, await created.text());
      const start = await fetch(`${base}/accounts/reports/authorize?code=${FUNCTION_KEY}`, { redirect: 'manual' });
      const cookie = start.headers
        .getSetCookie()
        .map((c) => c.split(';')[0])
        .join('; ');
      const { callbackUrl } = await driveLogin(start.headers.get('location')!, { login: 'demo@example.com', password: 'demo' });
      assert.equal((await fetch(callbackUrl, { headers: { cookie } })).status, 200);
    }
    const sent = await run(
      'npm',
      ['run', '--silent', 'enqueue', '--', '--account', 'reports', '--to', 'dave@example.com', '--subject', 'From reports'],
      { cwd: REPO, env: stack.env },
    );
    assert.match(sent.stdout, /Enqueued/);
    await poll("the run-time account's message in the mailbox", async () => {
      const list = (await (await fetch(`http://127.0.0.1:${stack.ports.MAILBOX_PORT}/messages.json`)).json()) as {
        subject: string;
      }[];
      return list.find((entry) => entry.subject === 'From reports');
    });
    const audit = await (await fetch(`${base}/status?code=${FUNCTION_KEY}&q=reports`)).text();
    assert.match(audit, /data-audit="create" data-audit-account="reports"/);
  });

  test('a second npm start on the same data folder is refused, naming the one that runs', async () => {
    const second = await startStack({ dataDir: stack.dataDir, waitUntilReady: false });
    const code = await Promise.race([second.exited, new Promise((resolve) => setTimeout(() => resolve('timeout'), 30_000))]);
    if (code === 'timeout') await stopStack(second);
    assert.equal(code, 1, second.output());
    assert.match(
      second.output(),
      /The local stack is already running on .+ \(npm start, process \d+, since .+\)\. Use that one, or stop it with Ctrl-C first\./,
    );
    assert.doesNotMatch(second.output(), /Ready/);
    assert.equal((await fetch(`http://127.0.0.1:${stack.ports.OUTBOX_PORT}/api/health`)).status, 200, 'the first one runs on');
    assert.ok(readdirSync(stack.dataDir).includes('npm-start.lock'), 'the first one keeps its lock');
  });

  test('Ctrl-C stops the stack and every process it started', async () => {
    const cmdlines = [...stack.pids].map((pid) => commandLine(pid, Infinity));
    assert.ok(
      cmdlines.some((line) => /azurite\.js/.test(line)),
      `Azurite is not among the processes: ${cmdlines.join(' | ')}`,
    );
    const { exited, left } = await interruptStack(stack);
    // Look first, then clean up: what is still running after Ctrl-C is the failure.
    const leftLines = left.map((pid) => commandLine(pid));
    kill(left);
    assert.ok(exited, `npm start did not exit within 25 s of Ctrl-C:\n${stack.output()}`);
    assert.match(stack.output(), /Stopped\./);
    assert.deepEqual(leftLines, [], 'processes left running after Ctrl-C');
    assert.ok(!readdirSync(stack.dataDir).includes('npm-start.lock'), 'the lock is gone with the stack');
  });
});

describe('npm start with an empty account list', { timeout: 90_000 }, () => {
  test('says that nothing can be sent and how to add an account, with no step for an account that is not there', async () => {
    const stack = await startStack({ env: { MAIL_ACCOUNTS: '[]' } });
    try {
      const out = stack.output();
      assert.match(out, /^Ready, but no account is configured: your MAIL_ACCOUNTS or MAIL_ACCOUNTS_FILE is an empty list/m);
      assert.match(out, /Add an account \(docs\/provider-microsoft\.md, docs\/provider-google\.md\)/);
      assert.doesNotMatch(out, /undefined|Authorize for|Sign in as/);
      assert.doesNotMatch(out, /[a-z]\.\.(\s|$)/m, 'no doubled full stop');
    } finally {
      await stopStack(stack);
      await rm(stack.dataDir, { recursive: true, force: true });
    }
  });
});

async function startStack(options: { env?: NodeJS.ProcessEnv; dataDir?: string; waitUntilReady?: boolean } = {}): Promise<Stack> {
  const names = [
    'OUTBOX_PORT',
    'IDP_PORT',
    'MAILBOX_PORT',
    'SMTP_PORT',
    'GRAPH_PORT',
    'RELAY_PORT',
    'RELAY_TLS_PORT',
    'RELAY_PLAIN_PORT',
    'AZURITE_BLOB_PORT',
    'AZURITE_QUEUE_PORT',
    'AZURITE_TABLE_PORT',
  ];
  const free = await freePorts(names.length);
  const ports = Object.fromEntries(names.map((name, i) => [name, free[i]!]));
  const dataDir = options.dataDir ?? (await mkdtemp(path.join(os.tmpdir(), 'outbox-local-')));
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    ...Object.fromEntries(Object.entries(ports).map(([k, v]) => [k, String(v)])),
    OUTBOX_DATA_DIR: dataDir,
    LOCAL_FUNCTION_KEY: FUNCTION_KEY,
  };
  // The stack must configure itself, as for a newcomer.
  for (const name of [
    'MAIL_ACCOUNTS',
    'MAIL_ACCOUNTS_FILE',
    'LOCAL_SECRETS_FILE',
    'PUBLIC_BASE_URL',
    'MailStorage',
    'KEY_VAULT_URL',
    'REFRESH_SCHEDULE',
  ])
    delete env[name];
  Object.assign(env, options.env);

  // Its own process group, so that SIGINT reaches it the way Ctrl-C in a terminal does.
  const child = spawn('npm', ['start'], { cwd: REPO, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const stack: Stack = { child, output: () => output, env, dataDir, ports, pids: new Set(), exited };

  if (options.waitUntilReady === false) return stack;
  const deadline = Date.now() + 60_000;
  let done = false;
  void exited.then(() => (done = true));
  while (!/^Ready[.,]/m.test(output)) {
    if (done) throw new Error(`npm start exited before it was ready:\n${output}`);
    if (Date.now() > deadline) {
      await stopStack(stack);
      throw new Error(`npm start was not ready within 60 s:\n${output}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  for (const pid of descendants(child.pid!)) stack.pids.add(pid);
  stack.pids.add(child.pid!);
  return stack;
}

/**
 * Ctrl-C as a terminal sends it (SIGINT to the process group), then waits for `npm start` to exit and a moment
 * for whatever it started to follow. Kills nothing: says whether it exited and which processes are still running.
 */
async function interruptStack(stack: Stack): Promise<{ exited: boolean; left: number[] }> {
  for (const pid of descendants(stack.child.pid!)) stack.pids.add(pid);
  if (stack.child.exitCode === null && stack.child.signalCode === null) {
    try {
      process.kill(-stack.child.pid!, 'SIGINT');
    } catch {
      // already gone
    }
  }
  let timer: NodeJS.Timeout | undefined;
  const exited = await Promise.race([
    stack.exited.then(() => true),
    new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), 25_000))),
  ]);
  clearTimeout(timer);
  const deadline = Date.now() + 5_000;
  while ([...stack.pids].some(isRunning) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 100));
  return { exited, left: [...stack.pids].filter(isRunning) };
}

function kill(pids: number[]): void {
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone meanwhile
    }
  }
}

/** Stops the stack whatever state it is in, for clean-up after a failure: Ctrl-C, then force. */
async function stopStack(stack: Stack): Promise<void> {
  kill((await interruptStack(stack)).left);
}

async function authorizeWithoutBrowser(stack: Stack, accountId = 'demo'): Promise<void> {
  const start = await fetch(authorizeUrlOf(stack, accountId), { redirect: 'manual' });
  assert.equal(start.status, 302);
  const cookie = start.headers
    .getSetCookie()
    .map((c) => c.split(';')[0])
    .join('; ');
  const { callbackUrl } = await driveLogin(start.headers.get('location')!, { login: 'demo@example.com', password: 'demo' });
  const callback = await fetch(callbackUrl, { headers: { cookie } });
  assert.equal(callback.status, 200, await callback.text());
}

function authorizeUrlOf(stack: Stack, accountId = 'demo'): string {
  return `http://127.0.0.1:${stack.ports.OUTBOX_PORT}/api/accounts/${accountId}/authorize?code=${FUNCTION_KEY}`;
}

function connectionOf(stack: Stack): string {
  return devConnectionString('127.0.0.1', {
    blobPort: stack.ports.AZURITE_BLOB_PORT!,
    queuePort: stack.ports.AZURITE_QUEUE_PORT!,
    tablePort: stack.ports.AZURITE_TABLE_PORT!,
  });
}

function outboxQueue(stack: Stack): QueueClient {
  return new QueueClient(connectionOf(stack), QUEUES.outbox);
}

function addresses(value: { text: string } | { text: string }[] | undefined): string {
  return [value ?? []]
    .flat()
    .map((a) => a.text)
    .join(', ');
}

async function poll<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

async function freePorts(count: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from(
      { length: count },
      () =>
        new Promise<net.Server>((resolve, reject) => {
          const server = net.createServer();
          server.once('error', reject);
          server.listen(0, '127.0.0.1', () => resolve(server));
        }),
    ),
  );
  const ports = servers.map((server) => (server.address() as net.AddressInfo).port);
  await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))));
  return ports;
}

/** Every process below `root`, from /proc. */
function descendants(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      // The command name (field 2) may hold spaces and parentheses: the parent pid follows the last ')'.
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      children.set(ppid, [...(children.get(ppid) ?? []), Number(entry)]);
    } catch {
      // exited meanwhile
    }
  }
  const found: number[] = [];
  const queue = [root];
  while (queue.length > 0) {
    for (const child of children.get(queue.shift()!) ?? []) {
      found.push(child);
      queue.push(child);
    }
  }
  return found;
}

function isRunning(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

function commandLine(pid: number, maxLength = 160): string {
  try {
    return `${pid}: ${readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ').slice(0, maxLength)}`;
  } catch {
    return `${pid}: (gone)`;
  }
}
