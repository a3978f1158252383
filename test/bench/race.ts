/**
 * Copies of one message id enqueued at the same moment (a producer retrying an enqueue), through the sendMail
 * handler at 16 in flight: 50 ids × 3 copies and 10 ids × 8 copies, once on an idle account and once inside a
 * burst of other messages. Counts the mails the SMTP server got per id: every id beyond one mail is a duplicate.
 * Also runs the interleaving property (test/exactlyOnce.test.ts) for longer than the test suite does.
 */
import { spawn } from 'node:child_process';
import { encodeQueueJson } from '../../shared/message/queueJson';
import { QUEUES } from '../../shared/names';
import { FAST_POLICY, startSendHarness, startTokenSink, testAccount } from '../support/sendHarness';

export interface RaceFigures {
  ids: number;
  duplicates: number;
  /** Ids without exactly one final row and a result event. */
  unfinished: number;
  details: string[];
}

const SCENARIOS = [
  { ids: 50, copies: 3 },
  { ids: 10, copies: 8 },
];

export async function measureRace(connectionString: string, burstSize: number): Promise<RaceFigures> {
  const sink = await startTokenSink();
  const harness = await startSendHarness({
    connectionString,
    accounts: [testAccount({ id: 'race', port: sink.port, rateLimit: { messagesPerMinute: 100_000, concurrentConnections: 4 } })],
    // Short claims: a copy that met another's claim comes back a few seconds later instead of minutes.
    policy: { ...FAST_POLICY, smtpTimeouts: { connectionMs: 10_000, greetingMs: 10_000, socketMs: 30_000 } },
  });
  const outbox = harness.runtime.storage.queue(QUEUES.outbox);
  const runId = Date.now().toString(36);
  const figures: RaceFigures = { ids: 0, duplicates: 0, unfinished: 0, details: [] };
  try {
    for (const background of [0, burstSize]) {
      for (const { ids, copies } of SCENARIOS) {
        const tag = `${runId}-${background ? 'burst' : 'idle'}-${ids}x${copies}`;
        const raceIds = Array.from({ length: ids }, (_, i) => `race-${tag}-${i}`);
        const send = (id: string) =>
          outbox.sendMessage(
            encodeQueueJson({ id, account: 'race', to: ['race@example.com'], subject: id, text: `race [${id}]` }),
          );
        const burst = Array.from({ length: background }, (_, i) => `burst-${tag}-${i}`);
        // The burst first, then every copy of every id at the same moment, then the rest of the burst behind them.
        await Promise.all(burst.slice(0, background / 2).map(send));
        await Promise.all(raceIds.flatMap((id) => Array.from({ length: copies }, () => send(id))));
        await Promise.all(burst.slice(background / 2).map(send));
        const started = performance.now();
        await harness.drain(300_000);
        const seconds = Math.round((performance.now() - started) / 100) / 10;

        const events = await harness.results();
        let duplicates = 0;
        let unfinished = 0;
        for (const id of raceIds) {
          const mails = sink.received.filter((mail) => mail.raw.includes(`race [${id}]`)).length;
          if (mails > 1) duplicates += mails - 1;
          const row = await harness.ledger(id);
          const final = row?.status === 'sent' || row?.status === 'failed';
          if (!final || !events.some((e) => e.id === id && e.status === row.status)) unfinished++;
        }
        const eventIds = new Set(events.filter((e) => raceIds.includes(e.id)).map((e) => e.id));
        figures.ids += ids;
        figures.duplicates += duplicates;
        figures.unfinished += unfinished;
        figures.details.push(
          `race ${ids} ids × ${copies} copies${background ? ` inside a ${background}-message burst` : ', idle'}: ${duplicates} duplicate mail(s), ${unfinished} without a final row and its event, ${eventIds.size} ids with result events; drained in ${seconds} s`,
        );
      }
    }
  } finally {
    await harness.stop();
    await sink.stop();
  }
  return figures;
}

/** Runs the interleaving property `runs` times in a child process; returns whether every run held. */
export function runRaceProperty(runs: number): Promise<{ runs: number; ok: boolean; output: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['test/support/runTests.mjs', 'exactlyOnce'], {
      env: { ...process.env, RACE_RUNS: String(runs), NODE_OPTIONS: '' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.on('exit', (code) => resolve({ runs, ok: code === 0, output }));
  });
}
