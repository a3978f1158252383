import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import fc from 'fast-check';
import { startAzurite, type Azurite } from '../local/peers/azurite';
import type { SmtpSink } from '../local/peers/smtpSink';
import { startGraphStandIn, type GraphStandIn } from '../local/peers/graphStandIn';
import { brokenInvariants, graphCounter, raceCaseArbitrary, runRace, settlingAct, smtpCounter } from './support/interleavings';
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
let standIn: GraphStandIn;
const GRAPH_TOKEN = 'race-graph-token';

before(async () => {
  azurite = await startAzurite();
  sink = await startTokenSink();
  // Graph's stand-in with a token of its own: what is raced here is the pipeline, not the token's origin.
  standIn = await startGraphStandIn({
    verifyAccessToken: async (token) =>
      token === GRAPH_TOKEN
        ? {
            sub: 'race-graph',
            email: 'race-graph@example.com',
            clientId: 'race',
            scope: 'Mail.Send',
            scp: 'Mail.Send',
            exp: Date.now() / 1000 + 3_600,
            aud: 'https://graph.microsoft.com',
          }
        : undefined,
  });
  // Limits that never bind: the race is between copies, not with the budget (tested in sendMailBacklog).
  const limits = { rateLimit: { messagesPerMinute: 100_000, concurrentConnections: 4 } };
  harness = await startSendHarness({
    connectionString: azurite.connectionString,
    accounts: [
      testAccount({ id: 'race', port: sink.port, ...limits }),
      testAccount({
        id: 'race-graph',
        port: sink.port,
        provider: 'microsoft',
        tenantId: '7d2e4b10-6c3a-4f9e-8b21-5a0d9c3e7f46',
        oauth: { issuer: 'http://127.0.0.1:9/' },
        clientAuth: { type: 'secret', secretName: 'race-graph-secret' },
        transport: 'graph',
        graph: { baseUrl: standIn.url },
        ...limits,
      }),
    ],
    policy: { ...FAST_POLICY, sendingLeaseMs: 60_000 },
    install: false,
  });
  await harness.runtime.tokenStore.save(
    'race-graph',
    { accessToken: GRAPH_TOKEN, expiresAt: Date.now() + 3_600_000, scope: 'https://graph.microsoft.com/Mail.Send' },
    {},
    'graph',
  );
});
after(async () => {
  await harness?.stop();
  await sink?.stop();
  await standIn?.stop();
  await azurite?.stop();
});

test('copies of one id, in every order the scheduler tries, give one mail, one final row and its result event', async () => {
  let run = 0;
  const seed = process.env.RACE_SEED ? Number(process.env.RACE_SEED) : undefined;
  const result = await fc.check(
    fc.asyncProperty(fc.scheduler({ act: settlingAct }), raceCaseArbitrary(), async (s, race) => {
      const id = `race-${process.pid}-${++run}`;
      const outcome =
        race.transport === 'graph'
          ? await runRace(s, race, harness.services, graphCounter(standIn), 'race-graph', id)
          : await runRace(s, race, harness.services, smtpCounter(sink), 'race', id);
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
