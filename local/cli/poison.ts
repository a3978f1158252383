/**
 * `npm run poison`: the messages the Functions host gave up on (queue `mail-outbox-poison`), with what the ledger
 * says of each; `--retry` puts them back on `mail-outbox` once the cause is fixed.
 */
import { parseArgs } from 'node:util';
import { ConfigError } from '../../shared/errors';
import { QUEUES, TABLES } from '../../shared/names';
import { DeliveryLedger } from '../../shared/storage/deliveryLedger';
import { listPoisoned, retryPoisoned } from './poisonQueue';
import { explainStorageError, STORAGE_OPTIONS, STORAGE_USAGE, storageTarget } from './storageTarget';
import { detail, shortTime, table } from './textTable';
import { runCommand } from './runCommand';

const USAGE = `Usage: npm run poison [-- options]

  (no option)      list the messages in ${QUEUES.poison} (the first 32) with what the ledger says of each
  --retry          move them back to ${QUEUES.outbox}, to be sent as they are (an id already sent is not sent again)
  --id <id>        only the message with this id
  --json           print JSON instead of a table

${STORAGE_USAGE}`;

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      retry: { type: 'boolean' },
      id: { type: 'string' },
      json: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
      ...STORAGE_OPTIONS,
    },
  });
  if (values.help) return void console.log(USAGE);
  const target = storageTarget(values);
  const poison = target.storage.queue(QUEUES.poison);
  try {
    if (values.retry) {
      const { moved, left } = await retryPoisoned(poison, target.storage.queue(QUEUES.outbox), (id) =>
        values.id ? id === values.id : true,
      );
      if (values.json) return void console.log(JSON.stringify({ moved, left }, null, 2));
      if (values.id && moved.length === 0) throw new ConfigError(`No message with id ${values.id} in ${QUEUES.poison}.`);
      console.log(
        `Moved ${moved.length} message(s) back to ${QUEUES.outbox}${moved.length ? `: ${moved.join(', ')}` : ''}. Left in ${QUEUES.poison}: ${left}.`,
      );
      if (moved.length) console.log('Follow them with: npm run results -- --id <id>');
      return;
    }
    const messages = (await listPoisoned(poison, new DeliveryLedger(target.storage.table(TABLES.deliveries)))).filter(
      (m) => !values.id || m.id === values.id,
    );
    if (values.json) return void console.log(JSON.stringify(messages, null, 2));
    if (messages.length === 0) return void console.log(`${target.description}: ${QUEUES.poison} is empty.`);
    console.log(
      [
        `${target.description}: messages in ${QUEUES.poison} (the first 32):`,
        ...table(
          ['PUT THERE', 'ID', 'ACCOUNT', 'LEDGER'],
          messages.map((m) => [
            m.insertedOn ? shortTime(m.insertedOn.toISOString()) : '',
            m.id,
            m.account ?? '',
            m.ledger ? `${m.ledger.status} ${detail(m.ledger.code, m.ledger.reason)}` : 'no row',
          ]),
        ),
        '',
        'Once the cause is fixed: npm run poison -- --retry [--id <id>]',
      ].join('\n'),
    );
  } catch (error) {
    if (error instanceof ConfigError) throw error;
    throw new ConfigError(explainStorageError(error, target));
  }
}

runCommand(main, USAGE);
