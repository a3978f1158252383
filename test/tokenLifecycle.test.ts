/**
 * The token lifecycle end to end on real components: oidc-provider with access tokens of seconds and refresh-token
 * rotation, Azurite, the XOAUTH2 SMTP sink checking every token at the provider, the real refresh timer
 * (functions/refreshTokens.ts) and the real send path. Each test gets its own provider, sink and accounts.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Timer } from '@azure/functions';
import * as client from 'openid-client';
import { refreshTokens } from '../functions/refreshTokens';
import { startAzurite, type Azurite } from '../local/peers/azurite';
import {
  startIdentityProvider,
  type IdentityProvider,
  type IdentityProviderUser,
} from '../local/peers/identity/identityProvider';
import { startSmtpSink, type SmtpSink } from '../local/peers/smtpSink';
import type { Account } from '../shared/config';
import { deliverMessage } from '../shared/delivery/deliverMessage';
import { createLogger } from '../shared/log/logger';
import { QUEUES } from '../shared/names';
import { closeApp, createApp } from '../shared/app';
import { KeyVaultSecretStore } from '../shared/storage/keyVaultSecretStore';
import type { SecretStore } from '../shared/storage/secretStore';
import type { RefreshRunResult } from '../shared/tokens/refreshDueAccounts';
import { refreshTokenSecretName } from '../shared/tokens/tokenStore';
import { InvocationContext } from './support/azureFunctions';
import { authorizeDirect, authorizeViaCallback } from './support/authorizeDirect';
import { loadTestTls } from './support/certs';
import { FakeTokenCredential, startKeyVaultDouble, type KeyVaultDouble } from './support/keyVaultDouble';
import { FAST_POLICY, startSendHarness, testAccount, type SendHarness } from './support/sendHarness';

const CLIENT_ID = 'outbox-app';
const CLIENT_SECRET = 'lifecycle-client-secret-5d2c9e71';
const CLIENT_SECRET_NAME = 'outbox-app-client-secret';
const SCOPES = ['openid', 'email', 'profile', 'offline_access', 'https://outlook.office.com/SMTP.Send'];
const OPS = 'ops@contoso.test';
/** The harness's public base URL; the redirect URI registered at the provider. */
const REDIRECT_URI = 'http://127.0.0.1:7071/api/oauth/callback';

const ALICE: IdentityProviderUser = { id: 'user-alice', email: 'alice@contoso.test', password: 'alice-Pa55!' };
const BOB: IdentityProviderUser = { id: 'user-bob', email: 'bob@contoso.test', password: 'bob-Pa55!' };
const login = (user: IdentityProviderUser) => ({ login: user.email, password: user.password });

let azurite: Azurite;
let tls: Awaited<ReturnType<typeof loadTestTls>>;

before(async () => {
  [azurite, tls] = await Promise.all([startAzurite(), loadTestTls()]);
});
after(async () => {
  await azurite?.stop();
});

interface World {
  idp: IdentityProvider;
  sink: SmtpSink;
  harness: SendHarness;
  account(id: string): Account;
  authorize(id: string): Promise<Awaited<ReturnType<typeof authorizeDirect>>>;
  /** Runs the timer function itself and returns what it logged per account. */
  runTimer(): Promise<RefreshRunResult[]>;
  /** refresh_token grants the provider has answered (or refused) so far. */
  refreshGrants(): number;
  /** Mail the sink accepted for the alert receivers. */
  alerts(): SmtpSink['received'];
  stop(): Promise<void>;
}

async function startWorld(options: {
  accounts: Array<{ id: string; user: IdentityProviderUser; isDefault?: boolean }>;
  accessTokenTtlSeconds?: number;
  secrets?: SecretStore;
  env?: Record<string, string>;
  /** Tokens the SMTP server refuses whatever the provider says of them (asked before the provider). */
  smtpRefuses?: (token: string) => boolean | Promise<boolean>;
}): Promise<World> {
  const idp = await startIdentityProvider({
    clients: [
      { clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, authMethod: 'client_secret_post', redirectUris: [REDIRECT_URI] },
    ],
    users: [ALICE, BOB],
    accessTokenTtlSeconds: options.accessTokenTtlSeconds ?? 20,
    rotateRefreshTokens: true,
  });
  const sink = await startSmtpSink({
    security: 'starttls',
    key: tls.key,
    cert: tls.cert,
    verifyToken: async (user, token) =>
      !(await options.smtpRefuses?.(token)) && (await idp.verifyAccessToken(token))?.email === user,
  });
  const users = new Map(options.accounts.map((a) => [a.id, a.user]));
  const harness = await startSendHarness({
    connectionString: azurite.connectionString,
    seedTokens: false,
    env: { REFRESH_SCHEDULE: '0 * * * * *', ...options.env },
    ...(options.secrets ? { secrets: options.secrets } : {}),
    accounts: options.accounts.map((a) =>
      testAccount({
        id: a.id,
        port: sink.port,
        clientId: CLIENT_ID,
        clientAuth: { type: 'secret', secretName: CLIENT_SECRET_NAME },
        user: a.user.email,
        oauth: { issuer: idp.issuer, scopes: SCOPES },
        tokenMinLifetimeSeconds: 2,
        alerts: [OPS],
        ...(a.isDefault ? { default: true } : {}),
      }),
    ),
  });
  await harness.runtime.secrets.set(CLIENT_SECRET_NAME, CLIENT_SECRET);
  const account = (id: string) => {
    const found = harness.accounts.find((a) => a.id === id);
    if (!found) throw new Error(`no account ${id}`);
    return found;
  };
  return {
    idp,
    sink,
    harness,
    account,
    authorize: (id) => authorizeDirect(harness.runtime, account(id), login(users.get(id)!), { clientSecret: CLIENT_SECRET }),
    async runTimer() {
      const from = harness.logs.length;
      const timer: Timer = {
        isPastDue: false,
        schedule: { adjustForDST: false },
        scheduleStatus: { last: new Date().toISOString(), next: new Date().toISOString(), lastUpdated: new Date().toISOString() },
      };
      await refreshTokens(timer, new InvocationContext({ invocationId: `timer-${Date.now()}`, functionName: 'refreshTokens' }));
      return harness.logs
        .slice(from)
        .map((line) => JSON.parse(line) as { event: string } & RefreshRunResult)
        .filter((entry) => entry.event === 'token.refresh_run')
        .map(({ account: id, outcome, reason }) => ({ account: id, outcome, ...(reason ? { reason } : {}) }));
    },
    refreshGrants: () => idp.counters.tokenRequestsByGrant.refresh_token ?? 0,
    alerts: () => sink.received.filter((mail) => mail.envelope.to.includes(OPS)),
    async stop() {
      await harness.stop();
      await Promise.allSettled([sink.stop(), idp.stop()]);
    },
  };
}

/** Keeps the world's logs when a test fails: they say what the app did. */
async function inWorld(world: World, body: () => Promise<void>): Promise<void> {
  try {
    await body();
  } catch (error) {
    console.error(world.harness.logs.slice(-60).join('\n'));
    throw error;
  } finally {
    await world.stop();
  }
}

const outcomeOf = (results: RefreshRunResult[], id: string) => results.find((r) => r.account === id)?.outcome;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const mail = (id: string, account: string) => ({ id, account, to: ['someone@example.com'], subject: id, text: `message ${id}` });
const bySubject = (sink: SmtpSink, subject: string) =>
  sink.received.filter((m) => m.raw.toString('utf8').includes(`Subject: ${subject}`));

/** The messages the send path logged an SMTP refusal of our token for, from log line `from` on. */
const authRejections = (harness: SendHarness, from: number) =>
  harness.logs
    .slice(from)
    .filter((line) => line.includes('"event":"mail.auth_rejected"'))
    .map((line) => (JSON.parse(line) as { messageId: string }).messageId);

/** Whether the provider holds a refresh token live, by introspection (a replay would revoke a rotated grant). */
async function refreshTokenActive(world: World, token: string): Promise<boolean> {
  const config = await client.discovery(
    new URL(world.idp.issuer),
    CLIENT_ID,
    CLIENT_SECRET,
    client.ClientSecretPost(CLIENT_SECRET),
    { execute: [client.allowInsecureRequests] },
  );
  return (await client.tokenIntrospection(config, token, { token_type_hint: 'refresh_token' })).active;
}

describe('token lifecycle against oidc-provider (access tokens of seconds, refresh-token rotation)', () => {
  test('the timer refreshes only the accounts whose token would not outlive its next run', async () => {
    const world = await startWorld({
      accounts: [
        { id: 'due-quiet', user: ALICE },
        { id: 'due-soon', user: BOB },
      ],
    });
    await inWorld(world, async () => {
      const { harness } = world;
      const quiet = await world.authorize('due-quiet');
      const soon = await world.authorize('due-soon');
      // The quiet account's token stays valid for 3 hours, far past the next run (schedule: every minute).
      await harness.runtime.tokenStore.save('due-quiet', {
        accessToken: quiet.tokens.accessToken,
        expiresAt: Date.now() + 3 * 3_600_000,
      });

      const grants = world.refreshGrants();
      const results = await world.runTimer();
      assert.equal(world.refreshGrants() - grants, 1, 'exactly one refresh_token grant at the provider');
      assert.equal(outcomeOf(results, 'due-quiet'), 'still_valid');
      assert.equal(outcomeOf(results, 'due-soon'), 'refreshed');

      assert.equal(await harness.runtime.tokenStore.readRefreshToken('due-quiet'), quiet.tokens.refreshToken, 'untouched');
      assert.notEqual(await harness.runtime.tokenStore.readRefreshToken('due-soon'), soon.tokens.refreshToken, 'rotated');
      const status = await harness.runtime.accountStatus.get('due-soon');
      assert.equal(status?.state, 'ready');
      assert.ok(status?.lastRefreshOkAt, 'the refresh is recorded');
      assert.equal((await harness.runtime.accountStatus.get('due-quiet'))?.lastRefreshOkAt, undefined);
    });
  });

  test('a rotated refresh token is stored at once; the next refresh uses it and the old ones are dead', async () => {
    const world = await startWorld({ accounts: [{ id: 'rot-alpha', user: ALICE }] });
    await inWorld(world, async () => {
      const { harness, sink } = world;
      const store = harness.runtime.tokenStore;
      const first = await world.authorize('rot-alpha');
      const r0 = first.tokens.refreshToken;
      const grants = world.refreshGrants();

      assert.equal(outcomeOf(await world.runTimer(), 'rot-alpha'), 'refreshed');
      const r1 = await store.readRefreshToken('rot-alpha');
      const a1 = await store.readAccessToken('rot-alpha');
      assert.ok(r1 && r1 !== r0, 'the rotated refresh token was stored');
      assert.notEqual(a1?.accessToken, first.tokens.accessToken);

      assert.equal(
        outcomeOf(await world.runTimer(), 'rot-alpha'),
        'refreshed',
        'the second refresh succeeds, so it used the new token',
      );
      const r2 = await store.readRefreshToken('rot-alpha');
      assert.ok(r2 && r2 !== r1);
      assert.equal(world.refreshGrants() - grants, 2, "the provider's count matches our refreshes");
      const rotations = harness.logs.filter(
        (line) => line.includes('"event":"token.refreshed"') && line.includes('"rotated":true'),
      );
      assert.equal(rotations.length, 2);

      // Introspection (never a replay: a replayed rotated token would revoke the whole grant) shows which are live.
      const config = await client.discovery(
        new URL(world.idp.issuer),
        CLIENT_ID,
        CLIENT_SECRET,
        client.ClientSecretPost(CLIENT_SECRET),
        {
          execute: [client.allowInsecureRequests],
        },
      );
      const active = async (token: string) =>
        (await client.tokenIntrospection(config, token, { token_type_hint: 'refresh_token' })).active;
      assert.equal(await active(r0), false, 'the first refresh token is used up');
      assert.equal(await active(r1!), false, 'the second refresh token is used up');
      assert.equal(await active(r2!), true, 'the stored one is the live one');
      assert.equal((await harness.runtime.accountStatus.get('rot-alpha'))?.state, 'ready');

      await harness.enqueue(mail('rot-after-rotation', 'rot-alpha'));
      await harness.drain();
      assert.equal((await harness.ledger('rot-after-rotation'))?.status, 'sent');
      assert.equal(bySubject(sink, 'rot-after-rotation')[0]?.authUser, ALICE.email);
    });
  });

  test('a token the SMTP server refuses (535) is refreshed at the provider once, and the message goes out once', async () => {
    let refusedToken: string | undefined;
    const world = await startWorld({
      accounts: [{ id: 'rej-alpha', user: ALICE }],
      smtpRefuses: (token) => token === refusedToken,
    });
    await inWorld(world, async () => {
      const { harness, sink } = world;
      const store = harness.runtime.tokenStore;
      const first = await world.authorize('rej-alpha');
      // The provider still calls this token valid; the SMTP server refuses it (as Exchange does after a change).
      refusedToken = first.tokens.accessToken;
      const grants = world.refreshGrants();

      await harness.enqueue(mail('rej-once', 'rej-alpha'));
      await harness.drain();

      assert.equal(world.refreshGrants() - grants, 1, 'one refresh_token grant at the provider');
      assert.deepEqual(authRejections(harness, 0), ['rej-once'], 'the send path met one refusal');
      const rotated = await store.readRefreshToken('rej-alpha');
      assert.ok(rotated && rotated !== first.tokens.refreshToken, 'the rotated refresh token was saved');
      assert.equal(await refreshTokenActive(world, rotated), true, 'the saved refresh token is the live one');
      assert.notEqual((await store.readAccessToken('rej-alpha'))?.accessToken, refusedToken);
      const copies = bySubject(sink, 'rej-once');
      assert.equal(copies.length, 1, 'one copy delivered');
      assert.equal(copies[0]!.authUser, ALICE.email);
      const row = await harness.ledger('rej-once');
      assert.equal(row?.status, 'sent', JSON.stringify(row));
      assert.equal(row?.attempts, 1, 'the retry with the new token is part of the same attempt');
      assert.equal((await harness.runtime.accountStatus.get('rej-alpha'))?.state, 'ready');
      assert.deepEqual(
        (await harness.results()).map((r) => [r.id, r.status]),
        [['rej-once', 'sent']],
      );
    });
  });

  test('two instances whose token the SMTP server refuses at the same time make one refresh grant between them', async () => {
    let refusedToken: string | undefined;
    // The server holds each AUTH with the refused token until both instances have sent it, then refuses both.
    // A connection sends no second AUTH while its first is held: two held at once are the two instances.
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    let held = 0;
    let heldTogether = false;
    const world = await startWorld({
      accounts: [{ id: 'rej-both', user: ALICE }],
      smtpRefuses: async (token) => {
        if (token !== refusedToken) return false;
        if (++held === 2) {
          heldTogether = true;
          release();
        }
        await Promise.race([released, sleep(5_000)]);
        return true;
      },
    });
    const other = createApp(world.harness.runtime.env, {
      accounts: world.harness.accounts,
      secrets: world.harness.runtime.secrets,
      log: createLogger((_level, line) => world.harness.logs.push(line)),
      policy: FAST_POLICY,
      instanceId: 'other-instance',
    });
    await inWorld(world, async () => {
      const { harness, sink } = world;
      try {
        const first = await world.authorize('rej-both');
        refusedToken = first.tokens.accessToken;
        const grants = world.refreshGrants();
        const logsFrom = harness.logs.length;

        const outcomes = await Promise.all(
          [harness.runtime.delivery, other.delivery].map((services, i) =>
            deliverMessage(services, mail(`rej-both-${i}`, 'rej-both'), { queueMessageId: `rej-both-${i}`, dequeueCount: 1 }),
          ),
        );

        assert.ok(heldTogether, 'both instances sent the refused token before either had a new one');
        assert.deepEqual(authRejections(harness, logsFrom).sort(), ['rej-both-0', 'rej-both-1'], 'each met one refusal');
        assert.equal(world.refreshGrants() - grants, 1, 'one refresh_token grant between the two instances');
        assert.deepEqual(outcomes, ['sent', 'sent']);
        for (const id of ['rej-both-0', 'rej-both-1']) {
          assert.equal(bySubject(sink, id).length, 1, `${id}: one copy delivered`);
          assert.equal((await harness.ledger(id))?.status, 'sent', id);
        }
        const rotated = await harness.runtime.tokenStore.readRefreshToken('rej-both');
        assert.ok(rotated && rotated !== first.tokens.refreshToken, 'the rotated refresh token was saved');
        assert.equal(await refreshTokenActive(world, rotated), true, 'the saved refresh token is the live one');
        assert.equal((await harness.runtime.accountStatus.get('rej-both'))?.state, 'ready');
      } finally {
        await closeApp(other);
      }
    });
  });

  test('a revoked grant: reauthorization_required, one alert, messages kept, delivered after a new authorization', async () => {
    const world = await startWorld({
      accounts: [
        { id: 'rev-alpha', user: ALICE },
        { id: 'rev-bravo', user: BOB, isDefault: true },
      ],
    });
    await inWorld(world, async () => {
      const { harness, idp, sink } = world;
      const runtime = harness.runtime;
      await world.authorize('rev-alpha');
      await world.authorize('rev-bravo');
      await harness.enqueue(mail('rev-before', 'rev-alpha'));
      await harness.drain();
      assert.equal((await harness.ledger('rev-before'))?.status, 'sent');

      // Watch every secret write from here on.
      const writes: string[] = [];
      const secrets = runtime.secrets;
      const originalSet = secrets.set.bind(secrets);
      secrets.set = (name, value, opts) => {
        writes.push(name);
        return originalSet(name, value, opts);
      };
      const refreshTokenBefore = await runtime.tokenStore.readRefreshToken('rev-alpha');
      assert.ok(refreshTokenBefore);

      await idp.revokeGrantsOf(ALICE.id);
      const firstRun = await world.runTimer();
      assert.equal(outcomeOf(firstRun, 'rev-alpha'), 'failed');
      assert.equal(outcomeOf(firstRun, 'rev-bravo'), 'refreshed', 'the other account is not affected');
      const status = await runtime.accountStatus.get('rev-alpha');
      assert.equal(status?.state, 'reauthorization_required');
      assert.match(status?.providerError ?? '', /invalid_grant/);
      assert.match(status?.lastError ?? '', /revoked/);

      await harness.drain();
      assert.equal(world.alerts().length, 1, 'one alert email');
      const [alert] = world.alerts();
      assert.equal(alert!.authUser, BOB.email, 'sent through the other, healthy account');
      assert.match(alert!.raw.toString('utf8'), /rev-alpha/);
      assert.match(alert!.raw.toString('utf8'), /\/api\/accounts\/rev-alpha\/authorize/);

      const secondRun = await world.runTimer();
      assert.equal(outcomeOf(secondRun, 'rev-alpha'), 'waiting_for_admin', 'no new request with a dead grant');
      await harness.drain();
      assert.equal(world.alerts().length, 1, 'still one alert after a second run and drain');

      const grantsWhileWaiting = world.refreshGrants();
      const authFailuresWhileWaiting = sink.authFailures;
      await harness.enqueue(mail('rev-waiting', 'rev-alpha'));
      await harness.runFor(3_000);
      const waiting = await harness.ledger('rev-waiting');
      assert.equal(waiting?.status, 'deferred');
      assert.equal(waiting?.code, 'needs_reauthorization');
      assert.ok((waiting?.deferrals ?? 0) >= 2, 'it came back and was held again');
      assert.equal(bySubject(sink, 'rev-waiting').length, 0);
      // This instance sent for the account moments ago (its gate had read "ready" then): the timer's finding must
      // reach the gate at once, so that nothing goes to the SMTP server or the token endpoint with a dead grant.
      assert.equal(world.refreshGrants() - grantsWhileWaiting, 0, 'no token request with a grant known to be gone');
      assert.equal(sink.authFailures - authFailuresWhileWaiting, 0, 'no SMTP attempt with a revoked token');

      assert.equal(await runtime.tokenStore.readRefreshToken('rev-alpha'), refreshTokenBefore, 'the refresh token is kept');
      assert.deepEqual(
        writes.filter((name) => name === refreshTokenSecretName('rev-alpha')),
        [],
        'nothing overwrote the refresh token while waiting',
      );

      // The admin authorizes again through the app's own authorize and callback functions.
      const page = await authorizeViaCallback(runtime, 'rev-alpha', login(ALICE));
      assert.equal(page.status, 200, page.body);
      assert.equal((await runtime.accountStatus.get('rev-alpha'))?.state, 'ready');
      assert.notEqual(await runtime.tokenStore.readRefreshToken('rev-alpha'), refreshTokenBefore);

      await harness.drain(30_000);
      const delivered = await harness.ledger('rev-waiting');
      assert.equal(delivered?.status, 'sent', JSON.stringify(delivered));
      assert.equal(bySubject(sink, 'rev-waiting')[0]?.authUser, ALICE.email);
      assert.equal(world.alerts().length, 1);
      assert.deepEqual(
        (await harness.results()).filter((r) => r.status !== 'sent'),
        [],
        'nothing failed',
      );
    });
  });

  test('when another instance found the grant gone, this one stops at the first refused token and asks nobody', async () => {
    const world = await startWorld({ accounts: [{ id: 'far-alpha', user: ALICE }] });
    await inWorld(world, async () => {
      const { harness, idp, sink } = world;
      await world.authorize('far-alpha');
      await harness.enqueue(mail('far-before', 'far-alpha'));
      await harness.drain();
      assert.equal(
        (await harness.ledger('far-before'))?.status,
        'sent',
        'this instance now has the token and a "ready" gate cached',
      );
      // An open SMTP session is not asked for a token again: messages sent on it would meet no refusal, and this
      // test would check nothing. Closed, the next message opens a new connection with the cached token.
      harness.runtime.senders.closeConnections('far-alpha');

      const other = createApp(harness.runtime.env, {
        accounts: harness.accounts,
        secrets: harness.runtime.secrets,
        log: createLogger((_level, line) => harness.logs.push(line)),
      });
      await idp.revokeGrantsOf(ALICE.id);
      await assert.rejects(other.refresher.refreshIfNeeded(world.account('far-alpha'), { needValidUntil: Date.now() + 60_000 }), {
        code: 'needs_reauthorization',
      });
      assert.equal((await harness.runtime.accountStatus.get('far-alpha'))?.state, 'reauthorization_required');

      const grants = world.refreshGrants();
      const logsFrom = harness.logs.length;
      const ids = Array.from({ length: 5 }, (_, i) => `far-waiting-${i}`);
      for (const id of ids) await harness.enqueue(mail(id, 'far-alpha'));
      await harness.runFor(3_000);
      const rows = await Promise.all(ids.map((id) => harness.ledger(id)));
      // The new connection is refused; from then on this instance's gate knows, and the messages wait.
      for (const row of rows) {
        assert.equal(row?.status, 'deferred', row?.id);
        assert.equal(row?.code, 'needs_reauthorization', row?.id);
        assert.ok((row?.deferrals ?? 0) >= 2, `${row?.id} came back and was held again`);
      }
      assert.equal(ids.flatMap((id) => bySubject(sink, id)).length, 0, 'nothing went out');
      const refused = authRejections(harness, logsFrom);
      assert.equal(new Set(refused).size, refused.length, `no message met a refused token twice: ${refused.join(', ')}`);
      // Each message that was past the gate when the first refusal came meets it once (those waiting for a
      // connection too); after that the gate holds them all.
      assert.ok(refused.length >= 1, 'the cached token met the SMTP server and was refused');
      assert.equal(world.refreshGrants() - grants, 0, 'no token request with a grant known to be gone');
    });
  });

  test('two instances refreshing one account at once make one token request and share its result', async () => {
    const world = await startWorld({ accounts: [{ id: 'con-alpha', user: ALICE }] });
    await inWorld(world, async () => {
      const { harness } = world;
      const first = await world.authorize('con-alpha');
      // Make the stored token due for both callers.
      await harness.runtime.tokenStore.save('con-alpha', {
        accessToken: first.tokens.accessToken,
        expiresAt: Date.now() + 1_000,
      });
      const other = createApp(harness.runtime.env, {
        accounts: harness.accounts,
        secrets: harness.runtime.secrets,
        log: createLogger((_level, line) => harness.logs.push(line)),
      });
      const account = world.account('con-alpha');
      const grants = world.refreshGrants();
      const [a, b] = await Promise.all(
        [harness.runtime, other].map((runtime) =>
          runtime.refresher.refreshIfNeeded(account, { needValidUntil: Date.now() + 10_000 }),
        ),
      );
      assert.equal(world.refreshGrants() - grants, 1, 'one refresh_token grant');
      assert.equal(a!.record.accessToken, b!.record.accessToken, 'both got the same access token');
      assert.deepEqual([a!.refreshed, b!.refreshed].sort(), [false, true]);
      assert.notEqual(a!.record.accessToken, first.tokens.accessToken);

      // The grant is intact: the stored (rotated) refresh token works for the other instance.
      const next = await other.refresher.refreshIfNeeded(account, { needValidUntil: Date.now() + 60_000 });
      assert.equal(next.refreshed, true);
      assert.equal(world.refreshGrants() - grants, 2);
      assert.equal((await harness.runtime.accountStatus.get('con-alpha'))?.state, 'ready');
    });
  });

  test('with the token endpoint down: degraded after three runs, one alert, messages deferred and sent once it is back', async () => {
    // Tokens of 6 s with a minimum lifetime of 2 s: unusable 4 s after they were issued.
    const world = await startWorld({
      accessTokenTtlSeconds: 6,
      // One refresh at a time: which account degrades first, and so alerts through the other, is what is checked.
      env: { REFRESH_CONCURRENCY: '1' },
      accounts: [
        { id: 'down-alpha', user: ALICE },
        { id: 'down-bravo', user: BOB, isDefault: true },
      ],
    });
    await inWorld(world, async () => {
      const { harness, idp, sink } = world;
      const runtime = harness.runtime;
      const alpha = await world.authorize('down-alpha');
      await world.authorize('down-bravo');
      await sleep(Math.max(0, alpha.tokens.expiresAt - 2_000 - Date.now()) + 300);

      idp.setTokenEndpoint('down');
      const grants = world.refreshGrants();
      for (let run = 1; run <= 3; run++) {
        const results = await world.runTimer();
        assert.equal(outcomeOf(results, 'down-alpha'), 'failed');
        const status = await runtime.accountStatus.get('down-alpha');
        assert.equal(status?.consecutiveFailures, run);
        assert.equal(status?.state, run < 3 ? 'ready' : 'degraded', `after run ${run}`);
        // oauth4webapi reads error bodies of 4xx answers only: a 503 is classified by its status.
        assert.match(status?.lastErrorCode ?? '', /^(temporarily_unavailable|http_503)$/);
      }
      assert.equal(world.refreshGrants() - grants, 6, 'each run asked once per account');
      assert.match((await runtime.accountStatus.get('down-alpha'))?.alertedIncident ?? '', /^degraded:/, 'alerted once');

      await harness.enqueue(mail('down-waiting', 'down-alpha'));
      await harness.runFor(3_000);
      const waiting = await harness.ledger('down-waiting');
      assert.equal(waiting?.status, 'deferred');
      assert.equal(waiting?.code, 'token_unavailable');
      assert.equal(bySubject(sink, 'down-waiting').length, 0);
      assert.equal(world.alerts().length, 0, 'the alert waits too: no account can get a token');

      idp.setTokenEndpoint('normal');
      const recovered = await world.runTimer();
      assert.equal(outcomeOf(recovered, 'down-alpha'), 'refreshed');
      assert.equal(outcomeOf(recovered, 'down-bravo'), 'refreshed');
      const status = await runtime.accountStatus.get('down-alpha');
      assert.equal(status?.state, 'ready');
      assert.equal(status?.consecutiveFailures, 0);

      await harness.drain(20_000);
      assert.equal((await harness.ledger('down-waiting'))?.status, 'sent');
      assert.equal(bySubject(sink, 'down-waiting')[0]?.authUser, ALICE.email);
      assert.equal(world.alerts().length, 1, 'one alert, for the account that went degraded first');
      assert.match(world.alerts()[0]!.raw.toString('utf8'), /down-alpha/);
      const results = await harness.results();
      assert.deepEqual(
        results.filter((r) => r.status !== 'sent'),
        [],
        'none failed',
      );
      assert.ok(results.some((r) => r.id === 'down-waiting' && r.status === 'sent'));
      const poison = await runtime.storage.queue(QUEUES.poison).peekMessages({ numberOfMessages: 32 });
      assert.equal(poison.peekedMessageItems.length, 0, 'none lost to the poison queue');
    });
  });

  describe('Key Vault', () => {
    let vault: KeyVaultDouble;
    before(async () => {
      vault = await startKeyVaultDouble();
    });
    after(async () => {
      await vault?.stop();
    });

    test('a cached token sends while the vault is down; steady sending reads nothing; what an hour costs', async () => {
      const store = new KeyVaultSecretStore(vault.url, new FakeTokenCredential(), {
        disableChallengeResourceVerification: true,
        clientOptions: { tlsOptions: { ca: vault.caPem }, retryOptions: { maxRetries: 0 } },
      });
      // Longer-lived tokens here, so that nothing expires while the vault is down or during steady sending;
      // the default hourly schedule still finds them due (they would not outlive the next run plus margin).
      const world = await startWorld({
        accessTokenTtlSeconds: 300,
        secrets: store,
        env: { REFRESH_SCHEDULE: '' },
        accounts: [{ id: 'kv-alpha', user: ALICE }],
      });
      await inWorld(world, async () => {
        const { harness, sink } = world;
        const counts = () => ({ reads: vault.reads, writes: vault.writes });
        const since = (start: { reads: number; writes: number }) => ({
          reads: vault.reads - start.reads,
          writes: vault.writes - start.writes,
        });

        let start = counts();
        await world.authorize('kv-alpha');
        const authorization = since(start);
        // The first authorization of a deployment also creates the key that seals the access tokens (a write
        // and two reads, once), beside the client secret written by startWorld.
        assert.deepEqual(authorization, { reads: 2, writes: 2 }, 'the refresh token, and the sealing key once');
        assert.equal(vault.secret('kv-alpha-access-token'), undefined, 'access tokens are not Key Vault secrets');

        start = counts();
        await harness.enqueue(mail('kv-first', 'kv-alpha'));
        await harness.drain();
        assert.equal((await harness.ledger('kv-first'))?.status, 'sent');
        assert.deepEqual(since(start), { reads: 0, writes: 0 }, 'the access token comes from memory or the table');

        vault.setDown(true);
        try {
          await harness.enqueue(mail('kv-vault-down', 'kv-alpha'));
          await harness.drain();
          assert.equal((await harness.ledger('kv-vault-down'))?.status, 'sent', 'the cached token still sends');
        } finally {
          vault.setDown(false);
        }

        start = counts();
        const steady = Array.from({ length: 20 }, (_, i) => `kv-steady-${i}`);
        for (const id of steady) await harness.enqueue(mail(id, 'kv-alpha'));
        await harness.drain(30_000);
        for (const id of steady) assert.equal((await harness.ledger(id))?.status, 'sent', id);
        const steadyCost = since(start);
        assert.deepEqual(steadyCost, { reads: 0, writes: 0 }, 'steady sending costs no Key Vault call');

        // One timer run per hour (default schedule) with the token due: what the hour costs besides sending.
        start = counts();
        const grants = world.refreshGrants();
        assert.equal(outcomeOf(await world.runTimer(), 'kv-alpha'), 'refreshed');
        assert.equal(world.refreshGrants() - grants, 1);
        const timerCost = since(start);
        assert.equal(timerCost.writes, 1, 'the rotated refresh token only (a revoking provider)');

        start = counts();
        const afterRefresh = Array.from({ length: 20 }, (_, i) => `kv-after-refresh-${i}`);
        for (const id of afterRefresh) await harness.enqueue(mail(id, 'kv-alpha'));
        await harness.drain(30_000);
        for (const id of afterRefresh) assert.equal((await harness.ledger(id))?.status, 'sent', id);
        const afterRefreshCost = since(start);
        assert.deepEqual(
          afterRefreshCost,
          { reads: 0, writes: 0 },
          'the timer hands its new token to the senders of its instance',
        );
        assert.equal(sink.received.length, 42);
        assert.equal(vault.requests.filter((r) => r.operation === 'deleteSecret').length, 0, 'no secret was ever deleted');
        assert.equal(vault.versions('kv-alpha-refresh-token').length, 2, 'the authorization and the one rotation');

        console.log(
          `Key Vault per account per simulated hour: timer run ${timerCost.reads} reads + ${timerCost.writes} writes; ` +
            `sending ${steady.length + afterRefresh.length} messages: ${steadyCost.reads + afterRefreshCost.reads} reads, ` +
            `${steadyCost.writes + afterRefreshCost.writes} writes; ` +
            `first message on a cold instance: 1 read (the sealing key); authorization: 1 write; vault down: cached token sent.`,
        );
      });
    });
  });
});
