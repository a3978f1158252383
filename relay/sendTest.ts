/**
 * `npm run relay -- send-test`: proves the relay's identity and role assignments before a printer is pointed at
 * it, with exactly the requests the relay makes: a blob written to and deleted from `mail-mime`, a queue message
 * on `mail-outbox`, the allowed-senders document read from `relay-senders`, and a file written to and deleted from
 * `relay-activity`. The queue message is deleted again when the identity may (the relay's own role only adds
 * messages); otherwise it stays invisible for a minute and expires a second later, so sendMail is unlikely to
 * see it (if it does, it fails it as an invalid message, with its id in the ledger). With `applicationInsights`
 * configured, one trace `relay.send_test` is sent there too.
 */
import { randomBytes } from 'node:crypto';
import { ALLOWED_SENDERS_BLOB } from '../shared/relay/allowedSenders';
import type { RelayConfig } from './config';
import { createStorageTarget } from './storageTarget';
import { TelemetryExport } from './telemetryExport';

export interface SendTestStep {
  step: string;
  ok: boolean;
  detail: string;
}

const TEST_MESSAGE_SECONDS = 60;

/** The role each step needs, named in its failure. */
const ROLES = {
  blob: 'Storage Blob Data Contributor on container mail-mime',
  queue: 'Storage Queue Data Message Sender on queue mail-outbox',
  senders: 'Storage Blob Data Reader on container relay-senders',
  activity: 'Storage Blob Data Contributor on container relay-activity',
} as const;

export async function sendTest(config: RelayConfig): Promise<SendTestStep[]> {
  const target = createStorageTarget({ ...config.storage, requestTimeoutSeconds: 15 });
  if (config.storage.createIfMissing)
    await Promise.all([
      target.container.createIfNotExists(),
      target.queue.createIfNotExists(),
      target.senders.createIfNotExists(),
      target.activity.createIfNotExists(),
    ]).catch(() => undefined);
  const id = `relay-send-test-${Date.now().toString(36)}-${randomBytes(4).toString('hex')}`;
  const body = `Subject: ${id}\r\n\r\nWritten and deleted by npm run relay -- send-test.\r\n`;
  const steps = [
    await step('blob mail-mime', ROLES.blob, async () => {
      const blob = target.container.getBlockBlobClient(`send-test/${id}.eml`);
      await blob.upload(body, Buffer.byteLength(body));
      await blob.delete();
      return `wrote and deleted ${blob.name}`;
    }),
    await step('queue mail-outbox', ROLES.queue, async () => {
      const text = Buffer.from(JSON.stringify({ relaySendTest: id })).toString('base64');
      const sent = await target.queue.sendMessage(text, {
        visibilityTimeout: TEST_MESSAGE_SECONDS,
        messageTimeToLive: TEST_MESSAGE_SECONDS + 1,
      });
      try {
        await target.queue.deleteMessage(sent.messageId, sent.popReceipt);
        return 'added and deleted a message';
      } catch (error) {
        if ((error as { statusCode?: number }).statusCode !== 403) throw error;
        return `added a message; deleting is not allowed (as it should be): it stays invisible and expires in ${TEST_MESSAGE_SECONDS} s`;
      }
    }),
    await step('read relay-senders', ROLES.senders, async () => {
      try {
        const properties = await target.senders.getBlobClient(ALLOWED_SENDERS_BLOB).getProperties();
        return `read ${ALLOWED_SENDERS_BLOB} (last written ${properties.lastModified?.toISOString() ?? 'at an unknown time'})`;
      } catch (error) {
        if ((error as { statusCode?: number }).statusCode === 404)
          return `may read, but ${ALLOWED_SENDERS_BLOB} is not published yet (the app's token refresh timer writes it)`;
        throw error;
      }
    }),
    await step('write relay-activity', ROLES.activity, async () => {
      const blob = target.activity.getBlockBlobClient(`${id}.tmp`);
      await blob.upload('{}', 2);
      await blob.delete();
      return `wrote and deleted ${blob.name}`;
    }),
  ];
  const insights = config.applicationInsights;
  if (insights) {
    // The export's own errors name the role (401/403), so the step adds no hint of its own.
    const telemetry = new TelemetryExport(
      {
        ...insights,
        credential: insights.authentication === 'entra' ? target.credential : undefined,
        roleInstance: config.hostname,
      },
      { info() {}, warn() {}, error() {} },
    );
    steps.push(
      await step('Application Insights', 'Monitoring Metrics Publisher on the Application Insights resource', async () => {
        try {
          await telemetry.probe('info', JSON.stringify({ event: 'relay.send_test', id }));
        } finally {
          await telemetry.close(0);
        }
        return `sent trace relay.send_test (${id}) to ${new URL(insights.ingestionEndpoint).host}`;
      }),
    );
  }
  return steps;
}

async function step(name: string, role: string, run: () => Promise<string>): Promise<SendTestStep> {
  try {
    return { step: name, ok: true, detail: await run() };
  } catch (error) {
    const e = error as { statusCode?: number; code?: string; message?: string };
    const first = String(e.message ?? error)
      .split('\n')[0]!
      .slice(0, 300);
    const hint =
      e.statusCode === 403
        ? ` — the identity needs ${role}`
        : e.statusCode === 404
          ? ' — the container or queue does not exist (the deployment creates it)'
          : '';
    return { step: name, ok: false, detail: `${[e.statusCode, e.code].filter(Boolean).join(' ')} ${first}${hint}`.trim() };
  }
}
