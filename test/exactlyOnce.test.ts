import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import fc from 'fast-check';
import { startAzurite, type Azurite } from '../local/peers/azurite';
import type { SmtpSink } from '../local/peers/smtpSink';
import { brokenInvariants, raceCaseArbitrary, runRace, settlingAct } from './support/interleavings';
import { FAST_POLICY, startSendHarness, startTokenSink, testAccount, type SendHarness } from './support/sendHarness';

/**
 * A message id gives at most one email, whatever the order in which 2 to 4 copies' storage and SMTP steps land,
 * with crashes at every point of an attempt, dead claims, and the host's retries. RACE_RUNS sets the number of
 * runs (default 500); RACE_SEED replays a failure (with RACE_PATH, both printed when a run fails).
 */
const RUNS = Number(process.env.RACE_RUNS ?? 500);

let azurite: Azurite;
let sink: SmtpSink;
let harness: SendHarness;

before(async () => {
  azurite = await startAzurite();
  sink = await startTokenSink();
  harness = await startSendHarness({
    connectionString: azurite.connectionString,
    // Limits that never bind: the race is between copies, not with the budget (tested in sendMailBacklog).
    accounts: [testAccount({ id: 'race', port: sink.port, rateLimit: { messagesPerMinute: 100_000, concurrentConnections: 4 } })],
    policy: { ...FAST_POLICY, sendingLeaseMs: 60_000 },
    install: false,
  });
});
after(async () => {
  await harness?.stop();
  await sink?.stop();
  await azurite?.stop();
});

test('copies of one id, in every order the scheduler tries, give one mail, one final row and its result event', async () => {
  let run = 0;
  const seed = process.env.RACE_SEED ? Number(process.env.RACE_SEED) : undefined;
  const result = await fc.check(
    fc.asyncProperty(fc.scheduler({ act: settlingAct }), raceCaseArbitrary(), async (s, race) => {
      const id = `race-${process.pid}-${++run}`;
      const outcome = await runRace(s, race, harness.services, sink, 'race', id);
      const broken = brokenInvariants(race, outcome);
      if (broken.length > 0)
        throw new Error(
          `${broken.join('; ')}\n  case ${JSON.stringify(race)}\n  order ${s
            .report()
            .map((t) => t.label)
            .join(' → ')}`,
        );
    }),
    {
      numRuns: RUNS,
      endOnFailure: true,
      ...(seed !== undefined ? { seed, ...(process.env.RACE_PATH ? { path: process.env.RACE_PATH } : {}) } : {}),
    },
  );
  if (result.failed) {
    assert.fail(
      `Failed after ${result.numRuns} run(s); replay with RACE_SEED=${result.seed} RACE_PATH=${result.counterexamplePath ?? ''}\n${String(
        (result.errorInstance as Error | undefined)?.message ?? result.errorInstance,
      )}`,
    );
  }
  assert.equal(result.numRuns, RUNS);
});
