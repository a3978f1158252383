import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { startAzurite, type Azurite } from '../local/peers/azurite';
import { startSmtpSink, type SmtpSink } from '../local/peers/smtpSink';
import { effectiveState, sendDecision, shouldMarkStale, STALE_AFTER_MS } from '../shared/accounts/accountRules';
import type { AccountStatus } from '../shared/accounts/accountStatus';
import { authorize } from '../functions/authorize';
import { HttpRequest } from './support/azureFunctions';
import { FileSecretStore } from '../shared/storage/fileSecretStore';
import { refreshTokenSecretName } from '../shared/tokens/tokenStore';
import { ALICE, startAuthorizationBench, type AuthorizationBench } from './support/authorizationBench';
import { authorizationClient, textOf } from './support/authorizationClient';
import { loadTestTls } from './support/certs';
import { FAST_POLICY, startSendHarness, testAccount, type SendHarness } from './support/sendHarness';

const NOW = Date.parse('2026-12-01T12:00:00Z');
const at = (msAgo: number) => new Date(NOW - msAgo).toISOString();

describe('account rules', () => {
  test('a ready account whose grant was last proven over a day ago is stale; a fresh authorization counts', () => {
    const old: AccountStatus = { accountId: 'a', state: 'ready', lastRefreshOkAt: at(STALE_AFTER_MS + 1) };
    assert.equal(effectiveState(old, NOW), 'stale');
    assert.equal(effectiveState({ ...old, authorizedAt: at(60_000) }, NOW), 'ready');
    assert.equal(shouldMarkStale(old, NOW), true);
    assert.equal(shouldMarkStale({ ...old, state: 'reauthorization_required' }, NOW), false, 'a worse state stays');
  });

  test('an ended pause opens the account again; a running one keeps it closed with the time left', () => {
    const paused: AccountStatus = {
      accountId: 'a',
      state: 'paused',
      pausedUntil: new Date(NOW + 60_000).toISOString(),
      lastErrorCode: 'quota_exceeded',
      authorizedAt: at(1_000),
    };
    const closed = sendDecision('a', paused, NOW);
    assert.deepEqual(closed.open ? undefined : [closed.code, closed.retryAfterMs], ['quota_exceeded', 60_000]);
    assert.equal(effectiveState(paused, NOW + 61_000), 'ready');
    assert.deepEqual(sendDecision('a', paused, NOW + 61_000), { open: true });
  });

  test('an account waiting for an admin is closed, naming what to do', () => {
    const decision = sendDecision('a', { accountId: 'a', state: 'reauthorization_required', lastError: 'revoked' }, NOW);
    assert.equal(decision.open, false);
    assert.match(decision.open ? '' : decision.reason, /needs to be authorized again: revoked/);
  });
});

describe('a new authorization and a running refresh', () => {
  let bench: AuthorizationBench;
  before(async () => {
    bench = await startAuthorizationBench('http://127.0.0.1:7071');
  });
  after(async () => {
    await bench?.stop();
  });

  test('the callback waits for the refresh lease, so the old grant’s rotated token cannot overwrite the new one', async () => {
    const client = authorizationClient(bench);
    const started = await client.start('mailbox');
    const callbackUrl = await client.signIn(started.authorizeUrl, ALICE);
    const staleRotated = 'rotated-refresh-token-of-the-old-grant';

    let callbackDone = false;
    let page: Awaited<ReturnType<typeof client.callback>> | undefined;
    await bench.runtime.refreshLease.withLease('mailbox', 5_000, async () => {
      // A refresh of the old grant holds the lease: the callback must not store its tokens meanwhile.
      const finishing = client.callback(callbackUrl, started.cookie).then((result) => {
        callbackDone = true;
        page = result;
      });
      await new Promise((resolve) => setTimeout(resolve, 800));
      assert.equal(callbackDone, false, 'the callback waits while a refresh holds the lease');
      await bench.runtime.tokenStore.save('mailbox', {
        accessToken: 'old-grant-access',
        expiresAt: Date.now() + 3_600_000,
        refreshToken: staleRotated,
      });
      void finishing;
    });
    for (let i = 0; i < 100 && !callbackDone; i++) await new Promise((resolve) => setTimeout(resolve, 100));
    assert.equal(page?.status, 200, textOf(page?.body ?? ''));
    const stored = bench.vault.secret(refreshTokenSecretName('mailbox'))?.value;
    assert.ok(stored && stored !== staleRotated, 'the new grant’s refresh token is the one kept');
    assert.equal((await bench.runtime.accountStatus.get('mailbox'))?.state, 'ready');
  });

  test('an unknown account’s authorize page lists the known ids, and every page of the flow links back to the status page', async () => {
    const unknown = await authorize(
      new HttpRequest({ method: 'GET', url: 'http://127.0.0.1:7071/api/accounts/nope/authorize', params: { id: 'nope' } }),
    );
    assert.equal(unknown.status, 404);
    const body = String(unknown.body);
    assert.match(body, /There is no account &quot;nope&quot;\. Known accounts: [a-z0-9, -]*mailbox/);
    assert.match(body, /<a href="\/api\/status">Back to the status page<\/a>/);

    const client = authorizationClient(bench);
    const started = await client.start('mailbox');
    const page = await client.callback(await client.signIn(started.authorizeUrl, ALICE), started.cookie);
    assert.match(page.body, /<a href="\/api\/status">Back to the status page<\/a>/);
    assert.match(textOf(page.body), /Access token valid until \d{4}-\d{2}-\d{2} \d{2}:\d{2} UTC/, 'one time format');
  });

  test('behind Entra sign-in, the admin who authorized is recorded with the grant; a forged header without it is not', async () => {
    const client = authorizationClient(bench);
    const admin = { 'x-ms-client-principal-name': 'it-admin@contoso.test', 'x-ms-client-principal-idp': 'aad' };
    const env = bench.runtime.env as Record<string, string | undefined>;

    const forged = await client.start('mailbox', undefined, admin);
    assert.equal((await client.callback(await client.signIn(forged.authorizeUrl, ALICE), forged.cookie)).status, 200);
    assert.equal((await bench.runtime.accountStatus.get('mailbox'))?.authorizedBy, undefined, 'no sign-in enforced: not trusted');

    env.WEBSITE_AUTH_ENABLED = 'True';
    try {
      const started = await client.start('mailbox', undefined, admin);
      assert.equal((await client.callback(await client.signIn(started.authorizeUrl, ALICE), started.cookie)).status, 200);
      assert.equal((await bench.runtime.accountStatus.get('mailbox'))?.authorizedBy, 'it-admin@contoso.test');
    } finally {
      delete env.WEBSITE_AUTH_ENABLED;
    }
  });
});

describe('connections of a replaced grant', () => {
  let azurite: Azurite;
  let sink: SmtpSink;
  let dir: string;
  const auths: string[] = [];
  let tokensValid = new Set<string>();

  before(async () => {
    const tls = await loadTestTls();
    azurite = await startAzurite();
    dir = await mkdtemp(path.join(tmpdir(), 'outbox-grant-'));
    sink = await startSmtpSink({
      security: 'starttls',
      key: tls.key,
      cert: tls.cert,
      verifyToken: (_user, token) => {
        auths.push(token);
        return tokensValid.has(token);
      },
    });
  });
  after(async () => {
    await sink?.stop();
    await azurite?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  async function instance(name: string, clearQueues: boolean): Promise<SendHarness> {
    return startSendHarness({
      connectionString: azurite.connectionString,
      accounts: [testAccount({ id: 'grant', port: sink.port })],
      // Connections stay open between messages, as on a warm instance.
      policy: { ...FAST_POLICY, connectionIdleMs: 60_000 },
      instanceId: `instance-${name}`,
      secrets: new FileSecretStore(path.join(dir, 'secrets.json')),
      seedTokens: false,
      clearQueues,
      install: false,
      statusCacheMs: 200,
    });
  }

  test('a new grant closes this instance’s connections at once, and another instance’s before its next message', async () => {
    const a = await instance('a', true);
    const b = await instance('b', false);
    try {
      const account = a.accounts[0]!;
      const grant = async (token: string) => {
        tokensValid = new Set([token]);
        await a.runtime.tokenStore.save('grant', {
          accessToken: token,
          expiresAt: Date.now() + 3_600_000,
          refreshToken: `r-${token}`,
        });
        await a.runtime.accountStates.markAuthorized(account, {
          authorizedUser: account.user,
          scopes: 'smtp',
          tokenExpiresAt: Date.now() + 3_600_000,
        });
      };
      const send = async (harness: SendHarness, id: string) => {
        await harness.enqueue({ id, to: ['x@example.com'], subject: id, text: id });
        await harness.drain(10_000);
        return harness.ledger(id);
      };

      await grant('token-one');
      assert.equal((await send(a, 'm1'))?.status, 'sent');
      assert.equal((await send(b, 'm2'))?.status, 'sent');
      assert.equal(a.runtime.delivery.senderFor(account).openConnections, 1);
      assert.equal(b.runtime.delivery.senderFor(account).openConnections, 1);

      // The grant is replaced (the old one revoked): the server would still take mail on an authenticated connection.
      await grant('token-two');
      assert.equal(a.runtime.delivery.senderFor(account).openConnections, 0, 'the writing instance closed its connection');

      await new Promise((resolve) => setTimeout(resolve, 300));
      auths.length = 0;
      assert.equal((await send(b, 'm3'))?.status, 'sent');
      assert.deepEqual(auths, ['token-two'], 'the other instance authenticated again, with the new grant');
    } finally {
      await a.stop();
      await b.stop();
    }
  });
});
