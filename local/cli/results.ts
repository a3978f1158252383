/**
 * `npm run results`: what became of the messages. The delivery ledger (table `deliveries`, newest first),
 * the result events on `mail-results` (peeked, or taken off the queue with --consume), and what is still
 * waiting on the outbox or lies in its poison queue.
 */
import { parseArgs } from 'node:util';
import type { QueueClient } from '@azure/storage-queue';
import { ConfigError } from '../../shared/errors';
import { QUEUES, TABLES } from '../../shared/names';
import { DeliveryLedger, type DeliveryRecord } from '../../shared/storage/deliveryLedger';
import { decodeQueueJson } from '../../shared/message/queueJson';
import type { ResultEvent } from '../../shared/message/resultEvent';
import { explainStorageError, STORAGE_OPTIONS, STORAGE_USAGE, storageTarget } from './storageTarget';
import { detail, shortTime, table } from './textTable';
import { runCommand } from './runCommand';

const USAGE = `Usage: npm run results [-- options]

  --id <id>        only this message, with every field and the whole reason
  --limit <n>      deliveries to show (default 20)
  --consume        take the result events off ${QUEUES.results} (default: only look at them)
  --json           print JSON instead of tables

${STORAGE_USAGE}`;

/** The queue service returns at most 32 messages per call. */
const PAGE = 32;

interface Report {
  deliveries: DeliveryRecord[];
  events: ResultEvent[];
  eventsConsumed: boolean;
  waiting: number;
  poisoned: number;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      id: { type: 'string' },
      limit: { type: 'string' },
      consume: { type: 'boolean' },
      json: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
      ...STORAGE_OPTIONS,
    },
  });
  if (values.help) return void console.log(USAGE);
  const limit = Number(values.limit ?? 20);
  if (!Number.isInteger(limit) || limit < 1) throw new ConfigError('--limit must be a positive whole number.');

  const target = storageTarget(values);
  let report: Report;
  try {
    const ledger = new DeliveryLedger(target.storage.table(TABLES.deliveries));
    const [deliveries, events, waiting, poisoned] = await Promise.all([
      values.id ? ledger.get(values.id).then((row) => (row ? [row] : [])) : newestDeliveries(ledger, limit),
      values.consume ? consumeEvents(target.storage.queue(QUEUES.results)) : peekEvents(target.storage.queue(QUEUES.results)),
      approximateCount(target.storage.queue(QUEUES.outbox)),
      approximateCount(target.storage.queue(QUEUES.poison)),
    ]);
    report = {
      deliveries,
      events: values.id ? events.filter((event) => event.id === values.id) : events,
      eventsConsumed: Boolean(values.consume),
      waiting,
      poisoned,
    };
  } catch (error) {
    throw new ConfigError(explainStorageError(error, target));
  }
  if (values.json) console.log(JSON.stringify(report, null, 2));
  else printReport(report, target.description, values.id);
}

async function newestDeliveries(ledger: DeliveryLedger, limit: number): Promise<DeliveryRecord[]> {
  const rows: DeliveryRecord[] = [];
  for await (const row of ledger.updatedSince(new Date(0))) rows.push(row);
  return rows.sort((a, b) => b.updatedAt.localeCompare(a.updatedAt)).slice(0, limit);
}

async function peekEvents(queue: QueueClient): Promise<ResultEvent[]> {
  const { peekedMessageItems } = await queue.peekMessages({ numberOfMessages: PAGE });
  return peekedMessageItems.flatMap((item) => decodeEvent(item.messageText));
}

async function consumeEvents(queue: QueueClient): Promise<ResultEvent[]> {
  const events: ResultEvent[] = [];
  for (;;) {
    const { receivedMessageItems } = await queue.receiveMessages({ numberOfMessages: PAGE, visibilityTimeout: 60 });
    if (receivedMessageItems.length === 0) return events;
    for (const item of receivedMessageItems) {
      events.push(...decodeEvent(item.messageText));
      await queue.deleteMessage(item.messageId, item.popReceipt);
    }
  }
}

function decodeEvent(text: string): ResultEvent[] {
  try {
    return [decodeQueueJson<ResultEvent>(text)];
  } catch {
    return [];
  }
}

async function approximateCount(queue: QueueClient): Promise<number> {
  if (!(await queue.exists())) return 0;
  return (await queue.getProperties()).approximateMessagesCount ?? 0;
}

function printReport(report: Report, where: string, id: string | undefined): void {
  const out: string[] = [`${where}:`, ''];
  if (report.deliveries.length === 0) out.push(id ? `No delivery recorded for ${id} (yet).` : 'No deliveries recorded yet.');
  else {
    out.push(`Deliveries (table ${TABLES.deliveries}, newest first):`);
    out.push(
      ...table(
        ['UPDATED', 'ID', 'STATUS', 'ACCOUNT', 'DEVICE', 'TRIES', 'DETAIL'],
        report.deliveries.map((d) => [
          shortTime(d.updatedAt),
          d.id,
          d.status,
          d.account ?? '',
          d.device ?? '',
          String(d.attempts),
          detail(d.code, d.reason ?? d.smtpReply ?? (d.nextAttemptAt ? `next attempt ${shortTime(d.nextAttemptAt)}` : d.subject)),
        ]),
      ),
    );
  }
  out.push('');
  const verb = report.eventsConsumed ? 'taken off' : 'on';
  if (report.events.length === 0) out.push(`No result events ${verb} ${QUEUES.results}.`);
  else {
    out.push(`Result events ${verb} ${QUEUES.results}${report.eventsConsumed ? '' : ' (first 32; --consume removes them)'}:`);
    out.push(
      ...table(
        ['AT', 'ID', 'STATUS', 'TRIES', 'DETAIL'],
        report.events.map((e) => [shortTime(e.at), e.id, e.status, String(e.attempts), detail(e.code, e.reason ?? e.smtpReply)]),
      ),
    );
  }
  // One message: the tables above cut long lines at the terminal's width; here every field is shown whole.
  if (id) {
    for (const d of report.deliveries) out.push('', `Delivery ${d.id}:`, ...fields(d, DELIVERY_FIELDS));
    for (const e of report.events) out.push('', `Result event ${e.id} (${e.at}):`, ...fields(e, EVENT_FIELDS));
  }
  out.push(
    '',
    `Waiting on ${QUEUES.outbox}: ${report.waiting}. In ${QUEUES.poison}: ${report.poisoned}${report.poisoned > 0 ? ' (npm run poison lists them)' : ''}.`,
  );
  console.log(out.join('\n'));
}

const DELIVERY_FIELDS = [
  'status',
  'code',
  'reason',
  'smtpReply',
  'account',
  'device',
  'subject',
  'recipients',
  'attempts',
  'deferrals',
  'messageId',
  'queueMessageId',
  'firstSeenAt',
  'updatedAt',
  'sentAt',
  'nextAttemptAt',
  'sendingUntil',
] as const satisfies readonly (keyof DeliveryRecord)[];
const EVENT_FIELDS = [
  'status',
  'code',
  'reason',
  'smtpReply',
  'account',
  'messageId',
  'attempts',
] as const satisfies readonly (keyof ResultEvent)[];

/** `  reason:     …` lines, the value whole (long ones continue indented under it), fields without a value left out. */
function fields<T extends object>(record: T, names: readonly (keyof T & string)[]): string[] {
  const width = Math.max(...names.map((name) => name.length)) + 2;
  return names.flatMap((name) => {
    const value = record[name];
    if (value === undefined || value === null || value === '') return [];
    const [first = '', ...rest] = String(value).split(/\r?\n/);
    return [`  ${`${name}:`.padEnd(width)}${first}`, ...rest.map((line) => `  ${' '.repeat(width)}${line}`)];
  });
}

runCommand(main, USAGE);
