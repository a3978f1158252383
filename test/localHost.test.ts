/**
 * The local Functions host (local/host/) against what the Azure Functions host does: the function registry and
 * what the host refuses at registration, route matching, HTTP requests and responses, function keys (with the
 * opt-in local key), host.json's queue settings, and timer schedules read by the same rules as the refresh code.
 * The queue trigger's behaviour on a real queue is in localHostQueue.test.ts.
 */
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { HttpHandler } from '@azure/functions';
import { loadFunctionDefinitions, recordRegistrations, type FunctionDefinition } from '../local/host/functionRegistry';
import { MESSAGE_LEASE_SECONDS, queueTriggerOptions, readHostJson } from '../local/host/hostSettings';
import { RouteTable } from '../local/host/httpRoutes';
import { startRunner } from '../local/host/runner';
import { startTimerTrigger } from '../local/host/timerTrigger';
import { QUEUES } from '../shared/names';
import { nextOccurrence } from '../shared/ncrontab';
import { nextRunAfter } from '../shared/tokens/refreshDueAccounts';

const REPO = fileURLToPath(new URL('..', import.meta.url));

describe('function registry', () => {
  test('captures what every function file registers through functions/index.ts', async () => {
    const definitions = await loadFunctionDefinitions();
    const files = readdirSync(path.join(REPO, 'functions')).filter((f) => f.endsWith('.ts') && f !== 'index.ts');
    const missing = files.filter((file) => !definitions.some((d) => d.source?.endsWith(`/functions/${file}`)));
    assert.deepEqual(
      missing,
      [],
      `registered by no import of functions/index.ts (so not deployed either): ${missing.join(', ')}`,
    );
    for (const d of definitions) {
      if (d.kind === 'http') {
        assert.ok(d.methods.length > 0 && ['anonymous', 'function', 'admin'].includes(d.authLevel), d.name);
        assert.doesNotMatch(d.route, /^\//, d.name);
      }
      assert.equal(typeof d.handler, 'function', d.name);
    }
    const sendMail = definitions.find((d) => d.name === 'sendMail');
    assert.deepEqual(sendMail && { kind: sendMail.kind, queueName: 'queueName' in sendMail && sendMail.queueName }, {
      kind: 'storageQueue',
      queueName: QUEUES.outbox,
    });
    const refresh = definitions.find((d) => d.kind === 'timer');
    assert.equal(refresh && 'schedule' in refresh && refresh.schedule, '%REFRESH_SCHEDULE%');
  });

  test('refuses at registration what the host refuses: admin and runtime routes, a route taken twice, a name taken twice', () => {
    const app: Record<string, unknown> = { http: () => {}, get: () => {}, storageQueue: () => {} };
    recordRegistrations(app);
    const http = app.http as (name: string, options: object) => void;
    const get = app.get as (name: string, options: object) => void;
    const handler: HttpHandler = async () => ({ status: 200 });
    for (const route of ['admin', 'admin/keys', '/Admin/x', 'administrators', 'runtime/webhooks']) {
      assert.throws(() => http(`f${route.length}`, { route, handler }), /conflicts with the host's built-in routes/, route);
    }
    // No route: the function's name is the route, so a function named "admin" is refused too.
    assert.throws(() => get('admin', { handler }), /conflicts with the host's built-in routes/);
    http('statusPage', { route: 'status', methods: ['GET'], handler });
    assert.throws(() => get('statusAgain', { route: 'Status', handler }), /conflicts with the route of function statusPage/);
    http('statusPost', { route: 'status', methods: ['POST'], handler });
    assert.throws(() => http('STATUSPAGE', { route: 'other', handler }), /Two functions are named "STATUSPAGE"/);
  });

  test('the runner refuses an admin route before it listens', async () => {
    const definitions: FunctionDefinition[] = [
      { kind: 'http', name: 'keys', route: 'admin/keys', methods: ['GET'], authLevel: 'function', handler: async () => ({}) },
    ];
    await assert.rejects(
      startRunner({ host: '127.0.0.1', port: 0, env: {}, definitions, hostJson: {}, log: () => {} }),
      /route "admin\/keys" conflicts with the host's built-in routes/,
    );
  });
});

describe('route table', () => {
  const table = new RouteTable(
    [
      { template: 'accounts/{id}', methods: ['GET'], target: 'detail' },
      { template: 'accounts/{id}/authorize', methods: ['GET'], target: 'authorize' },
      { template: 'accounts', methods: ['GET'], target: 'list' },
      { template: 'accounts/{id}/test', methods: ['POST'], target: 'test' },
      { template: 'items/{n:int}', methods: ['GET'], target: 'int' },
      { template: 'items/{name}', methods: ['GET'], target: 'name' },
      { template: 'files/{*path}', methods: ['GET'], target: 'files' },
      { template: 'reports/{year?}', methods: ['GET'], target: 'reports' },
    ],
    'api',
  );
  const match = (method: string, pathname: string) => {
    const result = table.match(method, pathname);
    return result.found ? { target: result.found.target, params: result.found.params } : { pathMatched: result.pathMatched };
  };

  test('matches under the prefix, case-insensitively, with decoded parameters', () => {
    assert.deepEqual(match('GET', '/api/accounts/demo%20one/authorize'), { target: 'authorize', params: { id: 'demo one' } });
    assert.deepEqual(match('get', '/API/Accounts/x'), { target: 'detail', params: { id: 'x' } });
    assert.deepEqual(match('GET', '/api/accounts/'), { target: 'list', params: {} });
    assert.deepEqual(match('GET', '/accounts'), { pathMatched: false });
  });

  test('constraints, optional parameters and catch-all', () => {
    assert.deepEqual(match('GET', '/api/items/42'), { target: 'int', params: { n: '42' } });
    assert.deepEqual(match('GET', '/api/items/abc'), { target: 'name', params: { name: 'abc' } });
    assert.deepEqual(match('GET', '/api/files/a/b.txt'), { target: 'files', params: { path: 'a/b.txt' } });
    assert.deepEqual(match('GET', '/api/reports'), { target: 'reports', params: {} });
    assert.deepEqual(match('GET', '/api/reports/2026'), { target: 'reports', params: { year: '2026' } });
  });

  test('a path with another method is no match', () => {
    assert.deepEqual(match('GET', '/api/accounts/x/test'), { pathMatched: true });
  });
});

describe('HTTP functions', () => {
  test('serves HTTP functions like the host: params, query, body, jsonBody, cookies, 204, 500, 404', async () => {
    const seen: { url: string; params: Record<string, string>; query: string | null; body: string; invocationId: string }[] = [];
    const definitions: FunctionDefinition[] = [
      {
        kind: 'http',
        name: 'echo',
        route: 'things/{id}/{part?}',
        methods: ['POST'],
        authLevel: 'function',
        handler: async (request, context) => {
          seen.push({
            url: request.url,
            params: { ...request.params },
            query: request.query.get('q'),
            body: await request.text(),
            invocationId: context.invocationId,
          });
          return {
            status: 201,
            jsonBody: { ok: true },
            cookies: [{ name: 'a', value: '1', path: '/', httpOnly: true, sameSite: 'Lax' }],
            headers: { 'X-Extra': 'yes' },
          };
        },
      },
      {
        kind: 'http',
        name: 'nothing',
        route: 'nothing',
        methods: ['GET'],
        authLevel: 'anonymous',
        handler: async () => undefined as never,
      },
      {
        kind: 'http',
        name: 'broken',
        route: 'broken',
        methods: ['GET'],
        authLevel: 'anonymous',
        handler: async () => {
          throw new Error('boom');
        },
      },
    ];
    const runner = await startRunner({ host: '127.0.0.1', port: 0, env: {}, definitions, hostJson: {}, log: () => {} });
    try {
      const response = await fetch(`${runner.url}/api/Things/a%2Fb?q=x`, { method: 'POST', body: 'hello' });
      assert.equal(response.status, 201);
      assert.deepEqual(await response.json(), { ok: true });
      assert.equal(response.headers.get('content-type'), 'application/json');
      assert.equal(response.headers.get('x-extra'), 'yes');
      assert.deepEqual(response.headers.getSetCookie(), ['a=1; Path=/; HttpOnly; SameSite=Lax']);
      assert.deepEqual(seen[0] && { ...seen[0], invocationId: typeof seen[0].invocationId }, {
        url: `${runner.url}/api/Things/a%2Fb?q=x`,
        params: { id: 'a/b' },
        query: 'x',
        body: 'hello',
        invocationId: 'string',
      });
      assert.equal((await fetch(`${runner.url}/api/nothing`)).status, 204);
      const originalError = console.error;
      console.error = () => {};
      try {
        assert.equal((await fetch(`${runner.url}/api/broken`)).status, 500);
      } finally {
        console.error = originalError;
      }
      assert.equal((await fetch(`${runner.url}/api/things/a`)).status, 404);
      assert.equal((await fetch(`${runner.url}/api/elsewhere`)).status, 404);
      assert.deepEqual(runner.summary.slice(0, 1), [
        `echo: [POST] ${runner.url}/api/things/{id}/{part?} (function key in Azure)`,
      ]);
    } finally {
      await runner.stop();
    }
  });

  test('with LOCAL_FUNCTION_KEY, non-anonymous routes need it as ?code= or x-functions-key, as in Azure', async () => {
    const KEY = 'local-key_0123456789';
    let calls = 0;
    const handler: HttpHandler = async () => {
      calls++;
      return { status: 200, body: 'ran' };
    };
    const definitions: FunctionDefinition[] = [
      { kind: 'http', name: 'page', route: 'page', methods: ['GET', 'POST'], authLevel: 'function', handler },
      { kind: 'http', name: 'master', route: 'master', methods: ['GET'], authLevel: 'admin', handler },
      { kind: 'http', name: 'open', route: 'open', methods: ['GET'], authLevel: 'anonymous', handler },
    ];
    const env = { LOCAL_FUNCTION_KEY: KEY };
    const runner = await startRunner({ host: '127.0.0.1', port: 0, env, definitions, hostJson: {}, log: () => {} });
    try {
      const status = async (pathAndQuery: string, headers: Record<string, string> = {}, method = 'GET') =>
        (await fetch(`${runner.url}/api/${pathAndQuery}`, { method, headers, ...(method === 'POST' ? { body: 'x' } : {}) }))
          .status;
      assert.equal(await status('page'), 401, 'no key');
      assert.equal(await status('page?code=wrong'), 401, 'a wrong key');
      assert.equal(await status(`page?code=${KEY.slice(0, -1)}`), 401, 'a prefix of the key');
      assert.equal(await status('page', {}, 'POST'), 401, 'no key, with a body');
      assert.equal(calls, 0, 'the function never ran without the key');
      assert.equal(await status(`page?code=${encodeURIComponent(KEY)}`), 200, 'key as code');
      assert.equal(await status('page', { 'x-functions-key': KEY }), 200, 'key as header');
      assert.equal(await status('page', { 'x-functions-key': KEY }, 'POST'), 200, 'key as header, with a body');
      assert.equal(await status(`page?code=wrong`, { 'x-functions-key': KEY }), 200, 'the header wins over code');
      assert.equal(await status(`page?code=${KEY}`, { 'x-functions-key': 'wrong' }), 401, 'the header wins over code');
      assert.equal(await status('master'), 401, 'admin level needs the key too');
      assert.equal(await status(`master?code=${KEY}`), 200, 'the local key stands for the master key');
      assert.equal(await status('open'), 200, 'anonymous routes need none');
      assert.equal(await status('nowhere'), 404, 'no route: 404 before any key check');
      assert.deepEqual(runner.summary.slice(0, 2), [
        `page: [GET,POST] ${runner.url}/api/page (function key)`,
        `master: [GET] ${runner.url}/api/master (admin key)`,
      ]);
    } finally {
      await runner.stop();
    }
  });
});

describe("host.json's queue settings", () => {
  test("the project's host.json: its values, the message encoding read from it, the host's 10-minute lease", () => {
    const options = queueTriggerOptions(readHostJson(), 2);
    assert.deepEqual(options, {
      batchSize: 8,
      newBatchThreshold: 4,
      visibilityTimeoutSeconds: 60,
      maxDequeueCount: 5,
      maxPollingIntervalMs: 2_000,
      messageEncoding: 'none',
      leaseSeconds: MESSAGE_LEASE_SECONDS,
    });
    assert.equal(MESSAGE_LEASE_SECONDS, 600);
  });

  test("an empty host.json gets the host's defaults, newBatchThreshold per core", () => {
    assert.deepEqual(queueTriggerOptions({}, 4), {
      batchSize: 16,
      newBatchThreshold: 32,
      visibilityTimeoutSeconds: 0,
      maxDequeueCount: 5,
      maxPollingIntervalMs: 60_000,
      messageEncoding: 'base64',
      leaseSeconds: MESSAGE_LEASE_SECONDS,
    });
  });

  test('values the host refuses are refused, naming the setting', () => {
    const queues = (q: object) => ({ extensions: { queues: q } });
    assert.throws(
      () => queueTriggerOptions(queues({ batchSize: 33 })),
      /queues\.batchSize: 33 is not a whole number from 1 to 32/,
    );
    assert.throws(() => queueTriggerOptions(queues({ batchSize: 0 })), /queues\.batchSize/);
    assert.throws(() => queueTriggerOptions(queues({ maxDequeueCount: 0 })), /queues\.maxDequeueCount/);
    assert.throws(() => queueTriggerOptions(queues({ newBatchThreshold: -1 })), /queues\.newBatchThreshold/);
    assert.throws(() => queueTriggerOptions(queues({ maxPollingInterval: '00:00:00.05' })), /maxPollingInterval/);
    assert.throws(() => queueTriggerOptions(queues({ messageEncoding: 'utf8' })), /messageEncoding/);
    assert.throws(() => queueTriggerOptions(queues({ visibilityTimeout: '30s' })), /not a time span/);
  });
});

describe('timer trigger', () => {
  test('runs a six-field NCRONTAB schedule with a Timer object', async () => {
    let fired: unknown;
    const timer = startTimerTrigger({
      schedule: '* * * * * *',
      runOnStartup: false,
      run: async (t) => void (fired ??= t),
      onError: (error) => assert.fail(String(error)),
    });
    const deadline = Date.now() + 2_500;
    while (!fired && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
    await timer.stop();
    assert.ok(fired, 'the timer did not fire within 2.5 s');
    const t = fired as { isPastDue: boolean; schedule: { adjustForDST: boolean }; scheduleStatus: { next: string } };
    assert.equal(t.isPastDue, false);
    assert.equal(t.schedule.adjustForDST, false);
    assert.ok(Date.parse(t.scheduleStatus.next) > 0);
  });

  test('reads schedules as the host does: six fields or five, nothing NCrontab cannot read', async () => {
    const start = (schedule: string) =>
      startTimerTrigger({ schedule, runOnStartup: false, run: async () => {}, onError: () => {} });
    const five = start('*/5 * * * *');
    try {
      const next = five.nextRun();
      assert.ok(next && next.getUTCSeconds() === 0 && next.getUTCMinutes() % 5 === 0, String(next?.toISOString()));
    } finally {
      await five.stop();
    }
    for (const schedule of ['0 0 * * *  * *', '0 0 12 ? * MON', '0 0 0 L * *', '0 0 0 * * 5#3', 'hourly'])
      assert.throws(() => start(schedule), /not an NCRONTAB schedule/, schedule);
  });

  test('computes the next run by the same rules as the refresh code: UTC whatever the machine, day and weekday together', async () => {
    const zone = process.env.TZ;
    process.env.TZ = 'Asia/Kolkata'; // UTC+05:30: an hourly schedule in local time would run at :30 UTC
    try {
      const at = new Date('2026-01-01T00:10:00Z');
      const cases: [string, string][] = [
        ['0 0 * * * *', '2026-01-01T01:00:00.000Z'],
        ['0 0 * * *', '2026-01-02T00:00:00.000Z'],
        ['0 30 9 * * 1-5', '2026-01-01T09:30:00.000Z'],
        // NCrontab: the 13th AND a Friday (Vixie cron would take Friday 2 January).
        ['0 0 0 13 * 5', '2026-02-13T00:00:00.000Z'],
        ['0 0 0 13 * Fri', '2026-02-13T00:00:00.000Z'],
      ];
      for (const [schedule, expected] of cases) {
        assert.equal(nextRunAfter(schedule, at).toISOString(), expected, `refresh code: ${schedule}`);
        assert.equal(nextOccurrence(schedule, at)?.toISOString(), expected, schedule);
      }
      // The running timer asks the same rules from now on: compare with the refresh code at the same moment.
      for (const [schedule] of cases) {
        const timer = startTimerTrigger({ schedule, runOnStartup: false, run: async () => {}, onError: () => {} });
        try {
          const now = new Date();
          assert.equal(timer.nextRun()?.toISOString(), nextRunAfter(schedule, now).toISOString(), `timer: ${schedule}`);
        } finally {
          await timer.stop();
        }
      }
    } finally {
      if (zone === undefined) delete process.env.TZ;
      else process.env.TZ = zone;
    }
  });

  test('WEBSITE_TIME_ZONE is ignored, as on Flex Consumption, and the banner line says so', async () => {
    const definitions: FunctionDefinition[] = [
      { kind: 'timer', name: 'daily', schedule: '%DAILY%', runOnStartup: false, handler: async () => {} },
    ];
    const env = { DAILY: '0 0 9 * * *', WEBSITE_TIME_ZONE: 'W. Europe Standard Time' };
    const runner = await startRunner({ host: '127.0.0.1', port: 0, env, definitions, hostJson: {}, log: () => {} });
    try {
      const line = runner.summary.find((l) => l.startsWith('daily:')) ?? '';
      const next = nextOccurrence('0 0 9 * * *', new Date())!.toISOString();
      assert.equal(
        line,
        `daily: timerTrigger (0 0 9 * * * UTC, next ${next}); WEBSITE_TIME_ZONE=W. Europe Standard Time is ignored, as on Flex Consumption`,
      );
    } finally {
      await runner.stop();
    }
  });
});
