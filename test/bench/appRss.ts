/**
 * The product's memory as it runs in Azure: the built bundle (dist/index.mjs) in a plain node process, without
 * the TypeScript loader, running the bundle's own sendMail with `concurrency` invocations in flight. This process
 * plays the host: it receives and deletes the queue messages and hands each one to the worker (bundleWorker.mjs).
 */
import { fork } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { encodeQueueJson } from '../../shared/message/queueJson';
import { QUEUES } from '../../shared/names';
import { createStorageClients } from '../../shared/storage/storageClients';
import { FileSecretStore } from '../../shared/storage/fileSecretStore';
import { AccessTokenTable } from '../../shared/storage/accessTokenTable';
import { AccessTokenKey } from '../../shared/tokens/accessTokenKey';
import { TokenStore } from '../../shared/tokens/tokenStore';
import { TABLES } from '../../shared/names';
import { testAccount, tokenFor } from '../support/sendHarness';
import { ROOT } from './ipc';
import { startPump } from './pump';

const CORE_STUB = `module.exports = {
  version: 'bench',
  setProgrammingModel() {},
  registerHook() { return { dispose() {} }; },
  log() {},
  registerFunction(metadata, handler) { globalThis.__outboxBenchRegister(metadata, handler); return { dispose() {} }; },
};
`;

export async function measureAppRss(options: {
  connectionString: string;
  port: number;
  messages: number;
  concurrency: number;
  ensureBundle(): Promise<{ file: string }>;
}): Promise<{ rssMbPeak: number; rssMbAfterLoad: number; completed: number; errors: number; ms: number }> {
  const { file } = await options.ensureBundle();
  const dir = mkdtempSync(path.join(tmpdir(), 'outbox-apprss-'));
  try {
    copyFileSync(file, path.join(dir, 'index.mjs'));
    const core = path.join(dir, 'node_modules', '@azure', 'functions-core');
    mkdirSync(core, { recursive: true });
    writeFileSync(path.join(core, 'package.json'), JSON.stringify({ name: '@azure/functions-core', main: 'index.js' }));
    writeFileSync(path.join(core, 'index.js'), CORE_STUB);

    const accountId = 'apprss';
    const secretsFile = path.join(dir, 'secrets.json');
    const storage = createStorageClients({ MailStorage: options.connectionString });
    await storage.ensureCreated();
    const secrets = new FileSecretStore(secretsFile);
    const leases = new AccessTokenTable(storage.table(TABLES.leases));
    await new TokenStore(secrets, leases, new AccessTokenKey(secrets)).save(accountId, {
      accessToken: tokenFor(accountId),
      expiresAt: Date.now() + 3_600_000,
      refreshToken: `refresh-${accountId}`,
    });
    const account = testAccount({
      id: accountId,
      port: options.port,
      default: true,
      smtp: { security: 'plain' },
      rateLimit: { messagesPerMinute: 100_000, concurrentConnections: 4 },
    });

    const outbox = storage.queue(QUEUES.outbox);
    await outbox.clearMessages();
    const runId = Date.now().toString(36);
    for (let i = 0; i < options.messages; i += 32) {
      await Promise.all(
        Array.from({ length: Math.min(32, options.messages - i) }, (_, k) =>
          outbox.sendMessage(
            encodeQueueJson({ id: `apprss-${runId}-${i + k}`, to: ['rcpt@example.com'], subject: `RSS ${i + k}`, text: 'x' }),
          ),
        ),
      );
    }

    const child = fork(path.join(ROOT, 'test/bench/bundleWorker.mjs'), [], {
      execArgv: [],
      cwd: dir,
      stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
      env: {
        PATH: process.env.PATH ?? '',
        OUTBOX_BUNDLE: path.join(dir, 'index.mjs'),
        MailStorage: options.connectionString,
        MAIL_ACCOUNTS: JSON.stringify([account]),
        LOCAL_SECRETS_FILE: secretsFile,
        PUBLIC_BASE_URL: 'http://127.0.0.1:7071',
      },
    });
    let stderr = '';
    child.stderr?.on('data', (chunk: Buffer) => (stderr = (stderr + String(chunk)).slice(-4_000)));
    const pending = new Map<string, (error?: string) => void>();
    let statsWaiter: ((stats: { rssMbPeak: number; rssMbAfterLoad: number }) => void) | undefined;
    const ready = new Promise<void>((resolve, reject) => {
      child.once('exit', (code) => reject(new Error(`bundle worker exited (${code}): ${stderr}`)));
      child.on(
        'message',
        (message: { type: string; id?: string; error?: string; rssMbPeak?: number; rssMbAfterLoad?: number }) => {
          if (message.type === 'ready') resolve();
          else if (message.type === 'done') pending.get(message.id!)?.(message.error);
          else if (message.type === 'stats') statsWaiter?.(message as { rssMbPeak: number; rssMbAfterLoad: number });
        },
      );
    });
    try {
      await ready;
      const started = Date.now();
      let handled = 0;
      const pump = startPump(
        outbox,
        (payload, metadata) =>
          new Promise<void>((resolve, reject) => {
            pending.set(metadata.id, (error) => {
              pending.delete(metadata.id);
              handled++;
              if (error) reject(new Error(error));
              else resolve();
            });
            const meta = { id: metadata.id, dequeueCount: metadata.dequeueCount, insertionTime: metadata.insertionTime };
            child.send({ type: 'invoke', id: metadata.id, payload, meta });
          }),
        {
          concurrency: options.concurrency,
          batchSize: 32,
          visibilityTimeoutSeconds: 300,
          shouldStop: () => handled >= options.messages || Date.now() - started > 120_000,
        },
      );
      await pump.done;
      const ms = Date.now() - started;
      const stats = await new Promise<{ rssMbPeak: number; rssMbAfterLoad: number }>((resolve) => {
        statsWaiter = resolve;
        child.send({ type: 'stats' });
      });
      return { ...stats, completed: pump.stats.completed, errors: pump.stats.errors, ms };
    } finally {
      child.removeAllListeners('exit');
      child.kill();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
