/**
 * The relay's log lines as Application Insights traces: the connection string and its configuration errors, the
 * export against a stand-in of the ingestion endpoint (batches, retries of what the service calls retriable and
 * only that, the bounded buffer, problems reported without a secret), and a real relay on Azurite whose sessions
 * and refusals reach the endpoint in the shape the workbook's queries read, with the key or an Entra token.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { TokenCredential } from '@azure/identity';
import { startAzurite, type Azurite } from '../local/peers/azurite';
import { sendTest } from '../relay/sendTest';
import { createLogger, type Logger } from '../shared/log/logger';
import { DEFAULT_INGESTION_ENDPOINT, parseAppInsightsConnection } from '../relay/appInsightsConnection';
import { parseRelayConfig } from '../relay/config';
import { blobStore } from '../relay/mimeStore';
import { startRelay, type Relay } from '../relay/startRelay';
import { INGESTION_SCOPE, TelemetryExport, type TelemetryTiming, type TraceEnvelope } from '../relay/telemetryExport';
import { startIngestionDouble, TEST_INSTRUMENTATION_KEY, type IngestionDouble } from './support/ingestionDouble';
import { composeMime, deviceTransport, sendMime } from './support/relayDevice';
import { relayStorage, testRelayConfig, type TestDevice } from './support/relayHarness';

const KEY = TEST_INSTRUMENTATION_KEY;
/** Looks like a JWT, as an Entra access token does. */
const TOKEN = 'eyJ0eXAiOiJKV1QiLCJhbGciOiJub25lIn0.eyJhdWQiOiJodHRwczovL21vbml0b3IuYXp1cmUuY29tIn0.c2lnbmF0dXJl';
const FAST: Partial<TelemetryTiming> = { flushIntervalMs: 20, retryDelayMs: 5, reportIntervalMs: 60_000 };
const PASSWORD = 'scanner secret 41';
const DEVICE: TestDevice = { user: 'mfp-1st-floor', password: PASSWORD, account: 'scans', allowedFrom: ['scanner@contoso.test'] };

async function waitFor(condition: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`not in time: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** A credential as @azure/identity's are, handing out one fixed token and noting the scopes asked for. */
function stubCredential(): TokenCredential & { scopes: string[] } {
  const scopes: string[] = [];
  return {
    scopes,
    getToken: async (scope) => {
      scopes.push(...[scope].flat());
      return { token: TOKEN, expiresOnTimestamp: Date.now() + 3_600_000 };
    },
  };
}

function recordingLogger(): { log: Logger; lines: string[] } {
  const lines: string[] = [];
  return { log: createLogger((_level, line) => lines.push(line)), lines };
}

/** The workbook's `parse_json(extract(@'(\{"event":.*\})', 1, message))`. */
function workbookFields(envelope: TraceEnvelope): Record<string, unknown> | undefined {
  const json = /(\{"event":.*\})/.exec(envelope.data.baseData.message)?.[1];
  return json === undefined ? undefined : (JSON.parse(json) as Record<string, unknown>);
}

const messages = (envelopes: readonly TraceEnvelope[]) => envelopes.map((e) => e.data.baseData.message);
const line = (n: number) => JSON.stringify({ event: 'test.line', n });

describe('the Application Insights connection string', () => {
  it('gives the key and the ingestion endpoint, with a trailing slash, whatever the case of the names', () => {
    assert.deepEqual(
      parseAppInsightsConnection(
        `instrumentationkey=${KEY};IngestionEndpoint=https://westeurope-5.in.applicationinsights.azure.com;LiveEndpoint=https://x/;ApplicationId=abc`,
      ),
      { instrumentationKey: KEY, ingestionEndpoint: 'https://westeurope-5.in.applicationinsights.azure.com/' },
    );
  });

  it('defaults to the global endpoint, or builds one from EndpointSuffix and Location', () => {
    assert.equal(parseAppInsightsConnection(`InstrumentationKey=${KEY}`).ingestionEndpoint, DEFAULT_INGESTION_ENDPOINT);
    assert.equal(
      parseAppInsightsConnection(`InstrumentationKey=${KEY};EndpointSuffix=applicationinsights.azure.cn;Location=chinaeast2`)
        .ingestionEndpoint,
      'https://chinaeast2.dc.applicationinsights.azure.cn/',
    );
  });

  it('names the missing or wrong part, and never repeats the key', () => {
    assert.throws(() => parseAppInsightsConnection('IngestionEndpoint=https://x.test/'), /has no InstrumentationKey/);
    assert.throws(() => parseAppInsightsConnection(`InstrumentationKey=${KEY};oops`), /without "name=value"/);
    assert.throws(
      () => parseAppInsightsConnection(`InstrumentationKey=${KEY};IngestionEndpoint=not a url`),
      (error: Error) => /IngestionEndpoint "not a url" is not a URL/.test(error.message) && !error.message.includes(KEY),
    );
    assert.throws(
      () => parseAppInsightsConnection(`InstrumentationKey=${KEY};IngestionEndpoint=http://ingest.example.com/`),
      /must be an https URL/,
    );
    assert.equal(
      parseAppInsightsConnection(`InstrumentationKey=${KEY};IngestionEndpoint=http://127.0.0.1:9/`).ingestionEndpoint,
      'http://127.0.0.1:9/',
      'plain HTTP to this machine (a test double)',
    );
  });
});

describe('relay config: applicationInsights', () => {
  const HASH = 'scrypt$N=1024,r=8,p=1$c2FsdHNhbHRzYWx0c2FsdA==$ZGVyaXZlZGtleWRlcml2ZWRrZXlkZXJpdmVka2V5MDA=';
  const identityStorage = {
    blobServiceUrl: 'https://stoutbox.blob.core.windows.net',
    queueServiceUrl: 'https://stoutbox.queue.core.windows.net',
    credential: { type: 'managedIdentity' },
  };
  const base = (extra: Record<string, unknown> = {}) => ({
    listeners: { starttls: { port: 587 } },
    tls: { certFile: 'cert.pem', keyFile: 'key.pem' },
    storage: identityStorage,
    devices: [{ user: 'scanner', passwordHash: HASH, account: 'default', allowedFrom: ['scanner@contoso.com'] }],
    ...extra,
  });
  const CONNECTION = `InstrumentationKey=${KEY};IngestionEndpoint=https://westeurope-5.in.applicationinsights.azure.com/`;
  const errorOf = (run: () => unknown) => {
    try {
      run();
    } catch (error) {
      return (error as Error).message;
    }
    return assert.fail('the configuration was accepted');
  };

  it('is off without the section or the environment variable, and Entra by default with it', () => {
    assert.equal(parseRelayConfig(base()).applicationInsights, undefined);
    assert.deepEqual(parseRelayConfig(base({ applicationInsights: { connectionString: CONNECTION } })).applicationInsights, {
      instrumentationKey: KEY,
      ingestionEndpoint: 'https://westeurope-5.in.applicationinsights.azure.com/',
      authentication: 'entra',
    });
  });

  it('takes APPLICATIONINSIGHTS_CONNECTION_STRING when the file has no connection string; the file wins', () => {
    const env = { APPLICATIONINSIGHTS_CONNECTION_STRING: `InstrumentationKey=${KEY}` };
    assert.equal(
      parseRelayConfig(base(), 'RELAY_CONFIG', env).applicationInsights?.ingestionEndpoint,
      DEFAULT_INGESTION_ENDPOINT,
    );
    assert.equal(
      parseRelayConfig(base({ applicationInsights: { authentication: 'instrumentationKey' } }), 'RELAY_CONFIG', env)
        .applicationInsights?.authentication,
      'instrumentationKey',
    );
    assert.equal(
      parseRelayConfig(base({ applicationInsights: { connectionString: CONNECTION } }), 'RELAY_CONFIG', env).applicationInsights
        ?.ingestionEndpoint,
      'https://westeurope-5.in.applicationinsights.azure.com/',
    );
    assert.match(
      errorOf(() =>
        parseRelayConfig(base(), 'RELAY_CONFIG', { APPLICATIONINSIGHTS_CONNECTION_STRING: 'IngestionEndpoint=https://x/' }),
      ),
      /APPLICATIONINSIGHTS_CONNECTION_STRING: has no InstrumentationKey/,
    );
  });

  it('names the field of each mistake', () => {
    assert.match(
      errorOf(() => parseRelayConfig(base({ applicationInsights: { connectionString: 'IngestionEndpoint=https://x/' } }))),
      /RELAY_CONFIG\.applicationInsights\.connectionString: has no InstrumentationKey/,
    );
    assert.match(
      errorOf(() => parseRelayConfig(base({ applicationInsights: { connectionString: CONNECTION, authentication: 'key' } }))),
      /RELAY_CONFIG\.applicationInsights\.authentication: /,
    );
    assert.match(
      errorOf(() => parseRelayConfig(base({ applicationInsights: { connectionString: CONNECTION, sampling: 1 } }))),
      /RELAY_CONFIG\.applicationInsights: Unrecognized key/,
    );
    assert.match(
      errorOf(() => parseRelayConfig(base({ applicationInsights: {} }))),
      /RELAY_CONFIG\.applicationInsights\.connectionString: required \(or set APPLICATIONINSIGHTS_CONNECTION_STRING\)/,
    );
  });

  it('refuses Entra without a storage identity to take the token from', () => {
    const storage = { connectionString: 'UseDevelopmentStorage=true' };
    const message = errorOf(() => parseRelayConfig(base({ storage, applicationInsights: { connectionString: CONNECTION } })));
    assert.match(
      message,
      /RELAY_CONFIG\.applicationInsights\.authentication: "entra" \(the default\) takes its token from the storage identity/,
    );
    assert.ok(!message.includes(KEY), 'the key is not repeated');
    assert.match(
      errorOf(() => parseRelayConfig(base({ storage }), 'RELAY_CONFIG', { APPLICATIONINSIGHTS_CONNECTION_STRING: CONNECTION })),
      /APPLICATIONINSIGHTS_CONNECTION_STRING is set, so .*"authentication": "instrumentationKey"/,
    );
    const keyOnly = parseRelayConfig(
      base({ storage, applicationInsights: { connectionString: CONNECTION, authentication: 'instrumentationKey' } }),
    );
    assert.equal(keyOnly.applicationInsights?.authentication, 'instrumentationKey');
  });
});

describe('the trace export', () => {
  let double: IngestionDouble;
  before(async () => {
    double = await startIngestionDouble();
  });
  after(() => double?.close());

  function exportTo(options: { credential?: TokenCredential; timing?: Partial<TelemetryTiming> } = {}) {
    const problems = recordingLogger();
    const telemetry = new TelemetryExport(
      { ...parseAppInsightsConnection(double.connectionString()), credential: options.credential, roleInstance: 'relay-test' },
      problems.log,
      { ...FAST, ...options.timing },
    );
    return { telemetry, problems: problems.lines };
  }

  function reset() {
    double.requests.length = 0;
    double.accepted.length = 0;
  }

  it('sends envelopes of MessageData with the line as the message, its severity and event, and the role tags', async () => {
    reset();
    const { telemetry } = exportTo();
    telemetry.add('info', line(1));
    telemetry.add('warn', line(2));
    telemetry.add('error', line(3));
    await waitFor(() => double.accepted.length === 3, 'three traces');
    await telemetry.close();
    const [first] = double.accepted;
    assert.equal(first!.name, 'Microsoft.ApplicationInsights.Message');
    assert.equal(first!.iKey, KEY);
    assert.ok(!Number.isNaN(Date.parse(first!.time)));
    assert.deepEqual(first!.tags, { 'ai.cloud.role': 'oauth-outbox-relay', 'ai.cloud.roleInstance': 'relay-test' });
    assert.deepEqual(first!.data, {
      baseType: 'MessageData',
      baseData: { ver: 2, message: line(1), severityLevel: 1, properties: { event: 'test.line' } },
    });
    assert.deepEqual(
      double.accepted.map((e) => e.data.baseData.severityLevel),
      [1, 2, 3],
    );
    assert.equal(double.requests[0]!.headers['content-type'], 'application/json');
    assert.equal(double.requests[0]!.headers.authorization, undefined, 'the key alone');
  });

  it('after a 500, sends the batch again: each item arrives exactly once', async () => {
    reset();
    double.answerNext({ status: 500 });
    const { telemetry, problems } = exportTo();
    for (const n of [1, 2, 3]) telemetry.add('info', line(n));
    await waitFor(() => double.accepted.length === 3, 'the items after the retry');
    await telemetry.close();
    assert.deepEqual(
      double.requests.map((r) => r.status),
      [500, 200],
    );
    assert.deepEqual(messages(double.accepted), [line(1), line(2), line(3)]);
    assert.equal(problems.length, 1, 'one line about the failure');
    assert.match(problems[0]!, /"event":"relay.telemetry_export_failed".*HTTP 500/);
  });

  it('after a 206, sends again only the refused items whose status is retriable', async () => {
    reset();
    double.answerNext({
      status: 206,
      refused: [
        { index: 1, statusCode: 500 },
        { index: 2, statusCode: 400 },
      ],
    });
    const { telemetry, problems } = exportTo();
    for (const n of [0, 1, 2, 3]) telemetry.add('info', line(n));
    await waitFor(() => double.requests.length === 2, 'the retry');
    await telemetry.close();
    assert.deepEqual(messages(double.requests[1]!.envelopes), [line(1)], 'index 1 only');
    assert.deepEqual(messages(double.accepted).sort(), [line(0), line(1), line(3)].sort());
    assert.equal(double.requests.length, 2, 'nothing more');
    assert.ok(
      problems.some((p) => /"dropped":1/.test(p)),
      `the refused item is reported as dropped: ${problems.join('\n')}`,
    );
  });

  it('retries a 429, does not retry a 400, and gives up a failing item after a few attempts', async () => {
    reset();
    double.answerNext({ status: 429 });
    const retried = exportTo();
    retried.telemetry.add('info', line(1));
    await waitFor(() => double.accepted.length === 1, 'the item after the 429');
    await retried.telemetry.close();
    assert.deepEqual(
      double.requests.map((r) => r.status),
      [429, 200],
    );

    reset();
    double.answerNext({ status: 400 });
    const refused = exportTo();
    refused.telemetry.add('info', line(2));
    await waitFor(() => double.requests.length === 1, 'the request');
    refused.telemetry.add('info', line(3));
    await waitFor(() => double.accepted.length === 1, 'the next line');
    await refused.telemetry.close();
    assert.deepEqual(
      double.requests.map((r) => messages(r.envelopes)),
      [[line(2)], [line(3)]],
      'the refused batch is not sent again',
    );

    reset();
    double.answerNext(...Array.from({ length: 5 }, () => ({ status: 503 as const })));
    const failing = exportTo();
    failing.telemetry.add('info', line(4));
    await waitFor(() => double.requests.length === 5, 'five attempts');
    await failing.telemetry.close();
    assert.equal(double.requests.length, 5, 'then no more');
    assert.ok(failing.problems.some((p) => /"relay.telemetry_dropped".*"dropped":1/.test(p)));
  });

  it('keeps at most 5000 lines: the oldest go, and their number is reported', async () => {
    reset();
    // The interval would send before the lines are all added; a batch of 100 goes at the next turn of the loop.
    const { telemetry, problems } = exportTo({ timing: { flushIntervalMs: 60_000 } });
    for (let n = 0; n < 5_050; n++) telemetry.add('info', line(n));
    await telemetry.close(30_000);
    assert.equal(double.accepted.length, 5_000);
    assert.equal(double.accepted[0]!.data.baseData.message, line(50), 'the oldest 50 were dropped');
    assert.ok(
      problems.some((p) => /"relay.telemetry_dropped".*"dropped":50/.test(p)),
      problems.join('\n'),
    );
  });

  it('keeps an unreachable endpoint or a failing identity to itself: retried, reported, dropped at the close deadline', async () => {
    const closed = await startIngestionDouble();
    await closed.close();
    const problems = recordingLogger();
    const unreachable = new TelemetryExport(
      { ...parseAppInsightsConnection(closed.connectionString()), credential: undefined, roleInstance: 'relay-test' },
      problems.log,
      FAST,
    );
    unreachable.add('info', line(1));
    await waitFor(() => problems.lines.length === 1, 'the failure');
    await unreachable.close(200);
    assert.match(problems.lines[0]!, /"relay.telemetry_export_failed".*fetch failed \(ECONNREFUSED\)/);
    assert.match(problems.lines.at(-1)!, /"relay.telemetry_dropped".*"dropped":1/);

    reset();
    const noToken = exportTo({
      credential: {
        getToken: () => Promise.reject(new Error(`AADSTS700016: application not found\ndetails ${TOKEN}`)),
      },
    });
    noToken.telemetry.add('info', line(2));
    await waitFor(() => noToken.problems.length === 1, 'the failure');
    await noToken.telemetry.close(200);
    assert.equal(double.requests.length, 0, 'nothing sent without a token');
    assert.match(noToken.problems[0]!, /no token for Application Insights: AADSTS700016: application not found"/);
  });

  it('reports failures at most once per interval, with the hint for Entra, and never the token', async () => {
    reset();
    double.answerNext(...Array.from({ length: 3 }, () => ({ status: 403 as const })));
    const credential = stubCredential();
    const { telemetry, problems } = exportTo({ credential });
    telemetry.add('info', line(1));
    await waitFor(() => double.accepted.length === 1, 'the item after three 403s');
    await telemetry.close();
    assert.equal(double.requests.length, 4);
    for (const request of double.requests) assert.equal(request.headers.authorization, `Bearer ${TOKEN}`);
    assert.deepEqual([...new Set(credential.scopes)], [INGESTION_SCOPE]);
    assert.equal(problems.length, 1, problems.join('\n'));
    assert.match(problems[0]!, /HTTP 403.*Monitoring Metrics Publisher role on the Application Insights resource/);
    assert.ok(!problems[0]!.includes(TOKEN.slice(0, 20)) && !problems[0]!.includes(KEY));
  });
});

describe('a relay that exports its logs', () => {
  let azurite: Azurite;
  let keyDouble: IngestionDouble;
  let entraDouble: IngestionDouble;
  let keyRelay: Relay;
  let entraRelay: Relay;
  let consoleLines: string[];
  const credential = stubCredential();

  before(async () => {
    azurite = await startAzurite();
    [keyDouble, entraDouble] = await Promise.all([startIngestionDouble(), startIngestionDouble()]);
    const recorded = recordingLogger();
    consoleLines = recorded.lines;
    keyRelay = await startRelay({
      config: await testRelayConfig(azurite.connectionString, [DEVICE], {
        applicationInsights: { connectionString: keyDouble.connectionString(), authentication: 'instrumentationKey' },
      }),
      log: recorded.log,
      telemetryTiming: FAST,
    });
    // Entra needs a storage identity; storage itself is Azurite's, through the store.
    const storage = relayStorage(azurite.connectionString);
    entraRelay = await startRelay({
      config: await testRelayConfig(azurite.connectionString, [DEVICE], {
        storage: {
          blobServiceUrl: 'https://stoutbox.blob.core.windows.net',
          queueServiceUrl: 'https://stoutbox.queue.core.windows.net',
          credential: { type: 'managedIdentity' },
        },
        applicationInsights: { connectionString: entraDouble.connectionString() },
      }),
      log: recordingLogger().log,
      store: blobStore(storage.container, storage.queue),
      credential,
      telemetryTiming: FAST,
    });
  });

  after(async () => {
    await keyRelay?.close();
    await entraRelay?.close();
    await keyDouble?.close();
    await entraDouble?.close();
    await azurite?.stop();
  });

  async function send(relay: Relay, headerFrom: string, password = PASSWORD) {
    const raw = await composeMime({ from: headerFrom, to: 'alice@example.com', subject: 'Scan', text: 'Scanned.' });
    const transport = await deviceTransport({ port: relay.port, user: DEVICE.user, pass: password });
    try {
      return await sendMime(transport, raw, { from: 'scanner@contoso.test', to: ['alice@example.com'] });
    } finally {
      transport.close();
    }
  }

  const traces = (double: IngestionDouble, event: string) =>
    double.accepted.filter((e) => e.data.baseData.properties.event === event);

  it('announces the export at start, without the key', async () => {
    await waitFor(() => traces(keyDouble, 'relay.telemetry_export').length === 1, 'relay.telemetry_export');
    const fields = workbookFields(traces(keyDouble, 'relay.telemetry_export')[0]!);
    assert.deepEqual(fields, {
      event: 'relay.telemetry_export',
      endpoint: new URL(keyDouble.endpoint).host,
      authentication: 'instrumentationKey',
    });
    assert.ok(
      consoleLines.some((l) => l.includes('"relay.telemetry_export"')),
      'and on the console',
    );
  });

  it('sends a session and a refusal as traces the workbook reads, with severities, role tags and the key alone', async () => {
    await send(keyRelay, 'scanner@contoso.test');
    await assert.rejects(
      send(keyRelay, '"ceo@evil.test" <scanner@contoso.test>'),
      (error: { responseCode?: number }) => error.responseCode === 550,
    );
    await waitFor(() => traces(keyDouble, 'relay.session').length === 2, 'two relay.session traces');
    await waitFor(() => traces(keyDouble, 'relay.message').length === 2, 'two relay.message traces');

    // Each connection's line is written when it closes: in either order.
    const sessions = traces(keyDouble, 'relay.session')
      .map((e) => workbookFields(e)!)
      .sort((a, b) => JSON.stringify(a.messages).localeCompare(JSON.stringify(b.messages)));
    assert.deepEqual(
      sessions.map((s) => [s.device, s.authFailures, s.messages]),
      [
        [DEVICE.user, 0, { queued: 0, refused: 1, deferred: 0, lost: 0 }],
        [DEVICE.user, 0, { queued: 1, refused: 0, deferred: 0, lost: 0 }],
      ],
    );
    const refusal = traces(keyDouble, 'relay.message')
      .map((e) => workbookFields(e)!)
      .find((m) => m.outcome === 'refused');
    assert.equal(refusal?.device, DEVICE.user);
    assert.match(String(refusal?.reply), /^550 5\.7\.1 The From display name/);
    assert.ok(refusal?.reason, 'the reason the refusals query groups by');

    for (const envelope of keyDouble.accepted) {
      assert.equal(envelope.iKey, KEY);
      assert.deepEqual(envelope.tags, { 'ai.cloud.role': 'oauth-outbox-relay', 'ai.cloud.roleInstance': 'localhost' });
      assert.ok(workbookFields(envelope), `the workbook reads ${envelope.data.baseData.message}`);
      assert.equal(
        envelope.data.baseData.message,
        consoleLines.find((l) => l === envelope.data.baseData.message),
        'the console line itself',
      );
    }
    assert.equal(traces(keyDouble, 'relay.session')[0]!.data.baseData.severityLevel, 1);
    assert.equal(traces(keyDouble, 'relay.allowed_senders_missing')[0]?.data.baseData.severityLevel, 2, 'a warning');
    for (const request of keyDouble.requests) assert.equal(request.headers.authorization, undefined);
  });

  it('never sends the password or the AUTH string, even of a failed login', async () => {
    await assert.rejects(send(keyRelay, 'scanner@contoso.test', 'wrong password 9'));
    await waitFor(() => traces(keyDouble, 'relay.login_failed').length === 1, 'relay.login_failed');
    await waitFor(() => traces(keyDouble, 'relay.session').length === 3, 'its session');
    const secrets = [PASSWORD, 'wrong password 9'].flatMap((password) => [
      password,
      Buffer.from(password).toString('base64'),
      Buffer.from(`\u0000${DEVICE.user}\u0000${password}`).toString('base64'),
    ]);
    for (const request of keyDouble.requests)
      for (const secret of secrets) assert.ok(!request.text.includes(secret), 'no password or AUTH string in a payload');
  });

  it('with Entra, sends the token of the relay identity for the monitor scope', async () => {
    await send(entraRelay, 'scanner@contoso.test');
    await waitFor(() => traces(entraDouble, 'relay.session').length === 1, 'the session');
    assert.ok(entraDouble.requests.length > 0);
    for (const request of entraDouble.requests) assert.equal(request.headers.authorization, `Bearer ${TOKEN}`);
    assert.deepEqual([...new Set(credential.scopes)], [INGESTION_SCOPE]);
    assert.equal(workbookFields(traces(entraDouble, 'relay.telemetry_export')[0]!)?.authentication, 'entra');
  });

  it('drops a batch the endpoint refuses (400) without sending it again, and keeps answering devices', async () => {
    const before = keyDouble.requests.length;
    keyDouble.answerNext({ status: 400 });
    await send(keyRelay, 'scanner@contoso.test');
    await waitFor(() => keyDouble.requests.slice(before).some((r) => r.status === 400), 'the 400');
    const refused = keyDouble.requests.slice(before).find((r) => r.status === 400)!;
    await send(keyRelay, 'scanner@contoso.test');
    await waitFor(
      () => keyDouble.requests.at(-1)!.status === 200 && traces(keyDouble, 'relay.session').length >= 4,
      'later traces',
    );
    const later = keyDouble.requests.slice(keyDouble.requests.indexOf(refused) + 1).flatMap((r) => messages(r.envelopes));
    for (const message of messages(refused.envelopes)) assert.ok(!later.includes(message), 'not sent again');
    await waitFor(() => consoleLines.some((l) => l.includes('"relay.telemetry_export_failed"')), 'the failure on the console');
    assert.match(
      consoleLines.find((l) => l.includes('"relay.telemetry_export_failed"'))!,
      /HTTP 400/,
    );
  });

  it('send-test sends one trace, and names what is wrong when the resource refuses it', async () => {
    const config = parseRelayConfig(
      await testRelayConfig(azurite.connectionString, [DEVICE], {
        applicationInsights: { connectionString: keyDouble.connectionString(), authentication: 'instrumentationKey' },
      }),
    );
    const passed = (await sendTest(config)).find((s) => s.step === 'Application Insights');
    assert.ok(passed?.ok, passed?.detail);
    assert.match(passed.detail, /^sent trace relay\.send_test \(relay-send-test-\S+\) to 127\.0\.0\.1:\d+$/);
    assert.equal(traces(keyDouble, 'relay.send_test').length, 1);

    keyDouble.answerNext({ status: 403 });
    const refused = (await sendTest(config)).find((s) => s.step === 'Application Insights');
    assert.equal(refused?.ok, false);
    assert.match(refused!.detail, /HTTP 403.*accepts Entra authentication only/);
    assert.ok(!refused!.detail.includes(KEY), 'the key is not repeated');
  });

  it('sends relay.stopped before close() returns', async () => {
    await keyRelay.close();
    const stopped = traces(keyDouble, 'relay.stopped');
    assert.equal(stopped.length, 1);
    assert.deepEqual(workbookFields(stopped[0]!), { event: 'relay.stopped' });
  });
});
