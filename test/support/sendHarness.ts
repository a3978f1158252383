/**
 * A send-path test bench on real components: Azurite for queues, tables and blobs, a file secret store
 * seeded with access tokens, and the real `sendMail` function driven through the queue trigger's semantics.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { InvocationContext } from './azureFunctions';
import { parseAccounts, type Account, type AccountInput } from '../../shared/config';
import { deliverMessage } from '../../shared/delivery/deliverMessage';
import type { DeliveryServices } from '../../shared/delivery/deliveryServices';
import { DEFAULT_POLICY, type DeliveryPolicy } from '../../shared/delivery/policy';
import { createLogger } from '../../shared/log/logger';
import { QUEUES } from '../../shared/names';
import { closeApp, createApp, setApp, type App } from '../../shared/app';
import type { Env } from '../../shared/settings';
import type { SecretStore } from '../../shared/storage/secretStore';
import { DeliveryLedger, type DeliveryRecord } from '../../shared/storage/deliveryLedger';
import { FileSecretStore } from '../../shared/storage/fileSecretStore';
import { decodeQueueJson, encodeQueueJson } from '../../shared/message/queueJson';
import type { ResultEvent } from '../../shared/message/resultEvent';
import { sendMail } from '../../functions/sendMail';
import type { QueueClient } from '@azure/storage-queue';
import { queueTriggerOptions, readHostJson } from '../../local/host/hostSettings';
import { pollOnce, type QueueHandler, type QueueTriggerOptions } from '../../local/host/queueTrigger';
import { startSmtpSink, type SmtpSink, type SmtpSinkOptions } from '../../local/peers/smtpSink';
import { ensureTestCaFiles, loadTestTls } from './certs';

export const FAST_POLICY: DeliveryPolicy = {
  ...DEFAULT_POLICY,
  backoffMs: () => 1_000,
  accountWaitMs: 1_000,
  maxInProcessWaitMs: 1_500,
  sendingLeaseMs: 4_000,
  connectionIdleMs: 300,
  // The greeting timeout ends first, so a silent server is reported as such rather than as an idle socket.
  smtpTimeouts: { connectionMs: 1_500, greetingMs: 1_000, socketMs: 1_500 },
};

/** The project's host.json (message encoding, the host's message lease), with short test timings. */
export const TRIGGER: QueueTriggerOptions = {
  ...queueTriggerOptions(readHostJson()),
  batchSize: 16,
  visibilityTimeoutSeconds: 1,
  maxDequeueCount: 5,
  maxPollingIntervalMs: 200,
};

export function testAccount(overrides: Partial<AccountInput> & { id: string; port: number }): AccountInput {
  const { port, ...rest } = overrides;
  return {
    provider: 'custom',
    flow: 'authorization_code',
    clientId: 'outbox',
    clientAuth: { type: 'none' },
    user: `${overrides.id}@example.com`,
    oauth: { issuer: 'http://127.0.0.1:9/', scopes: ['smtp'] },
    tokenMinLifetimeSeconds: 0,
    ...rest,
    smtp: { host: '127.0.0.1', port, security: 'starttls', ...(rest.smtp ?? {}) },
  } as AccountInput;
}

export const tokenFor = (accountId: string) => `test-access-token-${accountId}`;

/** A real SMTP server (STARTTLS unless told otherwise) that accepts exactly the tokens `tokenFor` gives each account. */
export async function startTokenSink(options: Partial<Omit<SmtpSinkOptions, 'verifyToken'>> = {}): Promise<SmtpSink> {
  const tls = await loadTestTls();
  return startSmtpSink({
    security: 'starttls',
    key: tls.key,
    cert: tls.cert,
    verifyToken: (user, token) => token === tokenFor(user.split('@')[0]!),
    ...options,
  });
}

export interface SendHarness {
  runtime: App;
  services: DeliveryServices;
  accounts: Account[];
  logs: string[];
  /** Puts raw text on the outbox queue (already encoded, or deliberately not). */
  enqueueRaw(text: string): Promise<string>;
  enqueue(message: object): Promise<string>;
  /** Runs the trigger until nothing is visible or invisible on the outbox; throws if that takes over `timeoutMs`. */
  drain(timeoutMs?: number): Promise<void>;
  /** Runs the trigger for `ms` or until the outbox is empty, for messages meant to wait; returns how many are left. */
  runFor(ms: number): Promise<number>;
  ledger(id: string): Promise<DeliveryRecord | undefined>;
  results(): Promise<ResultEvent[]>;
  stop(): Promise<void>;
}

export async function startSendHarness(options: {
  connectionString: string;
  accounts: AccountInput[];
  policy?: DeliveryPolicy;
  ledger?: (table: DeliveryLedger['table']) => DeliveryLedger;
  install?: boolean;
  /** Empty the queues first (default); false to pick up where another instance left off. */
  clearQueues?: boolean;
  /** The runtime's secret store (default: a file secret store in a temporary directory). */
  secrets?: SecretStore;
  /** Extra app settings, e.g. REFRESH_SCHEDULE. */
  env?: Env;
  /** How long the app trusts its cached account status (default 10 s). */
  statusCacheMs?: number;
  /** Names this harness as an instance of its own in leases and connection slots. */
  instanceId?: string;
  /** How long the account directory trusts its snapshot (default 5 s). */
  directoryStaleMs?: number;
  /** Store a made-up access and refresh token per account first (default); false when the test authorizes them. */
  seedTokens?: boolean;
}): Promise<SendHarness> {
  const { caPath } = await ensureTestCaFiles();
  const dir = await mkdtemp(path.join(tmpdir(), 'outbox-send-'));
  const accountInputs = options.accounts.map((a) => ({ ...a, smtp: { caFile: caPath, ...a.smtp } }));
  const accounts = parseAccounts(accountInputs);
  const logs: string[] = [];
  const runtime = createApp(
    {
      MailStorage: options.connectionString,
      PUBLIC_BASE_URL: 'http://127.0.0.1:7071',
      // Nothing drains the queue while a test-email request waits, unless a test says so.
      TEST_EMAIL_WAIT_SECONDS: '0',
      ...options.env,
    },
    {
      accounts,
      secrets: options.secrets ?? new FileSecretStore(path.join(dir, 'secrets.json')),
      log: createLogger((_level, line) => logs.push(line)),
      policy: options.policy ?? FAST_POLICY,
      ...(options.statusCacheMs !== undefined ? { statusCacheMs: options.statusCacheMs } : {}),
      ...(options.instanceId ? { instanceId: options.instanceId } : {}),
      ...(options.directoryStaleMs !== undefined ? { directoryStaleMs: options.directoryStaleMs } : {}),
      ...(options.ledger ? { ledger: options.ledger } : {}),
    },
  );
  await runtime.storage.ensureCreated();
  if (options.clearQueues !== false) {
    for (const name of Object.values(QUEUES)) await runtime.storage.queue(name).clearMessages();
  }
  for (const account of options.seedTokens === false ? [] : accounts) {
    const expiresAt = Date.now() + 3_600_000;
    await runtime.tokenStore.save(account.id, {
      accessToken: tokenFor(account.id),
      expiresAt,
      refreshToken: `refresh-${account.id}`,
    });
    // In memory too: harnesses standing for instances share the tables but not a secret store (the sealing key).
    runtime.tokens.remember(account.id, { accessToken: tokenFor(account.id), expiresAt });
  }
  const services = runtime.delivery;
  if (options.install !== false) setApp(runtime);
  const outbox = runtime.storage.queue(QUEUES.outbox);
  const poison = runtime.storage.queue(QUEUES.poison);

  const handler = async (payload: unknown, metadata: { id: string; dequeueCount: number; insertionTime?: string }) => {
    const context = new InvocationContext({
      invocationId: `test-${metadata.id}`,
      functionName: 'sendMail',
      triggerMetadata: { ...metadata },
    });
    if (options.install !== false) {
      await sendMail(payload, context);
      return;
    }
    // Not installed (a second instance in the same process): the same handler body, on this harness's app.
    await deliverMessage(services, payload, {
      queueMessageId: metadata.id,
      dequeueCount: metadata.dequeueCount,
      ...(metadata.insertionTime ? { insertedAt: new Date(metadata.insertionTime) } : {}),
    });
  };

  return {
    runtime,
    services,
    accounts,
    logs,
    async enqueueRaw(text) {
      return (await outbox.sendMessage(text)).messageId;
    },
    async enqueue(message) {
      return (await outbox.sendMessage(encodeQueueJson(message))).messageId;
    },
    async drain(timeoutMs = 15_000) {
      const left = await runTrigger(outbox, poison, handler, timeoutMs);
      if (left > 0) throw new Error(`drain: ${left} message(s) still on the outbox after ${timeoutMs} ms`);
    },
    runFor: (ms) => runTrigger(outbox, poison, handler, ms),
    ledger: (id) => services.ledger.get(id),
    async results() {
      const queue = runtime.storage.queue(QUEUES.results);
      const out: ResultEvent[] = [];
      for (;;) {
        const { receivedMessageItems } = await queue.receiveMessages({ numberOfMessages: 32, visibilityTimeout: 60 });
        if (receivedMessageItems.length === 0) return out;
        for (const item of receivedMessageItems) {
          out.push(decodeQueueJson<ResultEvent>(item.messageText));
          await queue.deleteMessage(item.messageId, item.popReceipt);
        }
      }
    },
    async stop() {
      await closeApp(runtime);
      setApp(undefined);
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** Polls the outbox as the host does for up to `ms`; returns how many messages are left on it (0: it emptied). */
export async function runTrigger(outbox: QueueClient, poison: QueueClient, handler: QueueHandler, ms: number): Promise<number> {
  const deadline = Date.now() + ms;
  for (;;) {
    const seen = await pollOnce(outbox, poison, handler, TRIGGER);
    if (seen > 0 && Date.now() < deadline) continue;
    const { approximateMessagesCount } = await outbox.getProperties();
    if (!approximateMessagesCount || Date.now() >= deadline) return approximateMessagesCount ?? 0;
    await new Promise((resolve) => setTimeout(resolve, 150));
  }
}
