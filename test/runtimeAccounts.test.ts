/**
 * Accounts created, changed, paused and deleted at run time (POST/PUT/DELETE /api/accounts/{id} and the status
 * page's forms), on real components: Azurite, the local identity provider (with revocation), an SMTP server that
 * checks each token with that provider, the file secret store, and the real function handlers.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { HttpResponseInit } from '@azure/functions';
import * as client from 'openid-client';
import { accountCreate } from '../functions/accountCreate';
import { accountDelete } from '../functions/accountDelete';
import { accountUpdate } from '../functions/accountUpdate';
import { admin } from '../functions/admin';
import { startAzurite, type Azurite } from '../local/peers/azurite';
import {
  startIdentityProvider,
  type IdentityProvider,
  type IdentityProviderUser,
} from '../local/peers/identity/identityProvider';
import { startSmtpSink, type SmtpSink } from '../local/peers/smtpSink';
import { FileSecretStore } from '../shared/storage/fileSecretStore';
import { HttpRequest } from './support/azureFunctions';
import { authorizeViaCallback } from './support/authorizeDirect';
import { ensureTestCaFiles, loadTestTls } from './support/certs';
import { startSendHarness, testAccount, type SendHarness } from './support/sendHarness';

const BASE = 'http://127.0.0.1:7071';
const CLIENT_ID = 'outbox-app';
const CLIENT_SECRET = 'runtime-accounts-secret-7c41e9a0b2';
const SCOPES = ['openid', 'email', 'profile', 'offline_access', 'https://outlook.office.com/SMTP.Send'];
const ALICE: IdentityProviderUser = { id: 'user-alice', email: 'alice@contoso.test', password: 'alice-Pa55!' };

let azurite: Azurite;
let idp: IdentityProvider;
let sink: SmtpSink;
let harness: SendHarness;
let other: SendHarness;
let secretsDir: string;
let caPath: string;

before(async () => {
  const [started, tls, ca] = await Promise.all([startAzurite(), loadTestTls(), ensureTestCaFiles()]);
  azurite = started;
  caPath = ca.caPath;
  idp = await startIdentityProvider({
    clients: [
      {
        clientId: CLIENT_ID,
        clientSecret: CLIENT_SECRET,
        authMethod: 'client_secret_post',
        redirectUris: [`${BASE}/api/oauth/callback`],
      },
    ],
    users: [ALICE],
    rotateRefreshTokens: true,
  });
  sink = await startSmtpSink({
    security: 'starttls',
    key: tls.key,
    cert: tls.cert,
    verifyToken: async (user, token) => (await idp.verifyAccessToken(token))?.email === user,
  });
  secretsDir = await mkdtemp(path.join(tmpdir(), 'outbox-runtime-accounts-'));
  const secrets = new FileSecretStore(path.join(secretsDir, 'secrets.json'));
  const fixed = [testAccount({ id: 'fixed', port: sink.port, default: true })];
  harness = await startSendHarness({ connectionString: azurite.connectionString, accounts: fixed, secrets, seedTokens: false });
  // A second instance of the app that would not look at the table on its own for an hour.
  other = await startSendHarness({
    connectionString: azurite.connectionString,
    accounts: fixed,
    secrets,
    seedTokens: false,
    install: false,
    clearQueues: false,
    instanceId: 'instance-b',
    directoryStaleMs: 3_600_000,
  });
  await other.runtime.directory.refreshIfStale();
});

after(async () => {
  await other?.stop();
  await harness?.stop();
  await Promise.allSettled([sink?.stop(), idp?.stop(), azurite?.stop()]);
  if (secretsDir) await rm(secretsDir, { recursive: true, force: true });
});

function mailbox(id: string, extra: Record<string, unknown> = {}) {
  return {
    provider: 'custom',
    displayName: `Mailbox ${id}`,
    clientId: CLIENT_ID,
    clientAuth: { type: 'secret', secretName: `${id}-client-secret` },
    user: ALICE.email,
    oauth: { issuer: idp.issuer, scopes: SCOPES },
    smtp: { host: '127.0.0.1', port: sink.port, security: 'starttls', caFile: caPath },
    tokenMinLifetimeSeconds: 0,
    ...extra,
  };
}

function request(method: string, id: string | undefined, body?: unknown, headers: Record<string, string> = {}) {
  return new HttpRequest({
    method,
    url: `${BASE}/api/accounts${id ? `/${id}` : ''}`,
    params: id ? { id } : {},
    headers: { 'content-type': 'application/json', ...headers },
    ...(body === undefined ? {} : { body: { string: typeof body === 'string' ? body : JSON.stringify(body) } }),
  });
}

const create = (id: string, body: unknown) => accountCreate(request('POST', id, body));
const json = (response: HttpResponseInit) => response.jsonBody as Record<string, unknown> & { reasons?: string[] };

async function statusPage(query = ''): Promise<string> {
  const response = await admin(new HttpRequest({ method: 'GET', url: `${BASE}/api/status${query}` }));
  assert.equal(response.status, 200);
  return String(response.body);
}

describe('an account created at run time', () => {
  test('is authorized and sends without a restart, and its creation is in the audit trail', async () => {
    const created = await create('newbox', { ...mailbox('newbox'), clientSecret: CLIENT_SECRET });
    assert.equal(created.status, 201, JSON.stringify(created.jsonBody));
    assert.equal(await harness.runtime.secrets.get('newbox-client-secret'), CLIENT_SECRET);

    const callback = await authorizeViaCallback(harness.runtime, 'newbox', { login: ALICE.email, password: ALICE.password });
    assert.equal(callback.status, 200, callback.body);
    await harness.enqueue({ id: 'runtime-1', account: 'newbox', to: ['someone@example.com'], subject: 'Hello', text: 'Hi' });
    await harness.drain();
    assert.equal((await harness.ledger('runtime-1'))?.status, 'sent');
    assert.equal(sink.received.at(-1)?.authUser, ALICE.email);

    const audit = await harness.runtime.accountAudit.recent();
    const entry = audit.find((row) => row.accountId === 'newbox' && row.action === 'create');
    assert.ok(entry, 'a create row in the audit trail');
    assert.equal(entry.who, 'function key');
    assert.deepEqual(
      entry.changes.find((change) => change.field === 'clientSecret'),
      { field: 'clientSecret', to: '(set)' },
    );
    assert.equal(entry.changes.find((change) => change.field === 'user')?.to, ALICE.email);

    const page = await statusPage('?q=newbox');
    assert.match(page, /data-audit="create" data-audit-account="newbox"/);
    assert.match(page, /set on \d{4}-\d\d-\d\d \d\d:\d\d UTC/);
    for (const output of [page, JSON.stringify(audit), harness.logs.join('\n'), JSON.stringify(created.jsonBody)])
      assert.ok(!output.includes(CLIENT_SECRET), 'the client secret is never shown again');
  });

  test('a message for it on another instance waits there for its authorization, not failed as unknown_account', async () => {
    const created = await create('elsewhere', mailbox('elsewhere'));
    assert.equal(created.status, 201);
    // Instance B's snapshot predates the account; it must ask the table before calling the account unknown.
    assert.equal(other.runtime.directory.entry('elsewhere'), undefined);
    await other.enqueue({ id: 'runtime-2', account: 'elsewhere', to: ['someone@example.com'], subject: 'Hi', text: 'Hi' });
    // Not authorized yet, so it waits on the queue (deferred): run the trigger a while instead of draining.
    await other.runFor(1_000);
    const row = await other.ledger('runtime-2');
    assert.notEqual(row?.code, 'unknown_account');
    assert.equal(row?.status, 'deferred');
    assert.equal(row?.code, 'not_authorized');
  });

  test('validation errors name the field, and nothing is stored', async () => {
    const badPort = await create('bad', mailbox('bad', { smtp: { host: '127.0.0.1', port: 'x' } }));
    assert.equal(badPort.status, 400);
    assert.equal(json(badPort).error, 'invalid_account');
    assert.ok(
      json(badPort).reasons!.some((reason) => reason.startsWith('smtp.port: ')),
      String(json(badPort).reasons),
    );

    const noTenant = await create('bad', { provider: 'microsoft', clientId: 'x', user: 'a@contoso.test' });
    assert.deepEqual(json(noTenant).reasons, ['tenantId: required for provider "microsoft"']);

    const badId = await create('Bad_Id', mailbox('Bad_Id'));
    assert.match(String(json(badId).reasons), /^id: lowercase letters, digits and dashes/);

    const wrongSecret = await create('bad', { ...mailbox('bad', { clientAuth: { type: 'none' } }), clientSecret: 'x' });
    assert.match(String(json(wrongSecret).reasons), /^clientSecret: the account's clientAuth is "none"/);

    assert.equal(await harness.runtime.accountConfigs.get('bad'), undefined);
    assert.ok(!(await harness.runtime.accountAudit.recent()).some((row) => row.accountId === 'bad'));
  });

  test('accounts of MAIL_ACCOUNTS are read-only: 409 with the reason', async () => {
    for (const response of [
      await create('fixed', mailbox('fixed')),
      await accountUpdate(request('PUT', 'fixed', { state: 'paused' })),
      await accountDelete(request('DELETE', 'fixed')),
    ]) {
      assert.equal(response.status, 409);
      assert.equal(json(response).error, 'managed_by_app_setting');
      assert.match(String(json(response).reasons), /managed by the app setting MAIL_ACCOUNTS/);
    }
    assert.match(await statusPage('?q=fixed'), /data-managed="app_setting"/);
  });

  test('an edit replaces the configuration and records each changed field with its values', async () => {
    const edited = await accountUpdate(
      request('PUT', 'elsewhere', { ...mailbox('elsewhere'), displayName: 'Reports', alerts: ['ops@contoso.test'] }),
    );
    assert.equal(edited.status, 200, JSON.stringify(edited.jsonBody));
    assert.equal(harness.runtime.directory.entry('elsewhere')?.account.displayName, 'Reports');
    const entry = (await harness.runtime.accountAudit.recent()).find((row) => row.accountId === 'elsewhere');
    assert.equal(entry?.action, 'update');
    assert.deepEqual(entry?.changes, [
      { field: 'alerts', to: '["ops@contoso.test"]' },
      { field: 'displayName', from: 'Mailbox elsewhere', to: 'Reports' },
    ]);
    const refused = await accountUpdate(request('PUT', 'elsewhere', { ...mailbox('elsewhere'), id: 'other' }));
    assert.equal(refused.status, 400);
    assert.match(String(json(refused).reasons), /^id: "other" differs from the id in the URL/);
  });

  test('paused, its messages wait; resumed, they go out; both are in the audit trail', async () => {
    const paused = await accountUpdate(request('PUT', 'newbox', { state: 'paused' }));
    assert.equal(paused.status, 200, JSON.stringify(paused.jsonBody));
    await harness.enqueue({ id: 'runtime-3', account: 'newbox', to: ['someone@example.com'], subject: 'Later', text: 'Hi' });
    await harness.runFor(1_000);
    const waiting = await harness.ledger('runtime-3');
    assert.equal(waiting?.status, 'deferred');
    assert.equal(waiting?.code, 'paused');

    const resumed = await accountUpdate(request('PUT', 'newbox', { state: 'active' }));
    assert.equal(resumed.status, 200);
    await harness.runFor(2_000);
    assert.equal((await harness.ledger('runtime-3'))?.status, 'sent');
    const actions = (await harness.runtime.accountAudit.recent())
      .filter((row) => row.accountId === 'newbox')
      .map((row) => row.action);
    assert.deepEqual(actions.slice(0, 2), ['resume', 'pause']);
  });

  test('deleted, its grant is revoked at the provider, its secrets are gone and its ledger rows stay', async () => {
    const refreshToken = await harness.runtime.tokenStore.readRefreshToken('newbox');
    assert.ok(refreshToken);
    const deleted = await accountDelete(request('DELETE', 'newbox'));
    assert.equal(deleted.status, 200, JSON.stringify(deleted.jsonBody));
    assert.match(String(json(deleted).note), /grant revoked at the provider; secrets deleted/);

    const secrets = harness.runtime.secrets;
    for (const name of ['newbox-client-secret', 'newbox-refresh-token', 'newbox-access-token'])
      assert.equal(await secrets.get(name), undefined, name);
    const config = await client.discovery(new URL(idp.issuer), CLIENT_ID, CLIENT_SECRET, client.ClientSecretPost(CLIENT_SECRET), {
      execute: [client.allowInsecureRequests],
    });
    await assert.rejects(client.refreshTokenGrant(config, refreshToken), (error: unknown) => {
      assert.equal((error as { error?: string }).error, 'invalid_grant');
      return true;
    });
    assert.equal((await harness.ledger('runtime-1'))?.status, 'sent', 'the ledger keeps the history');
    assert.equal(harness.runtime.directory.entry('newbox'), undefined);
    const audit = (await harness.runtime.accountAudit.recent()).find((row) => row.action === 'delete');
    assert.equal(audit?.accountId, 'newbox');
    assert.ok(!JSON.stringify(audit).includes(refreshToken));
  });
});

describe('the status page with many accounts', () => {
  before(async () => {
    const table = harness.runtime.accountConfigs;
    const now = new Date().toISOString();
    await Promise.all(
      Array.from({ length: 60 }, (_, i) => {
        const id = `bulk-${String(i).padStart(3, '0')}`;
        const config = { ...mailbox(id), id, user: `user${i}@contoso.test`, displayName: i === 7 ? '<script>x</script>' : id };
        return table.write(
          {
            id,
            config,
            state: i < 5 ? 'paused' : 'active',
            createdAt: now,
            createdBy: 'test',
            updatedAt: now,
            updatedBy: 'test',
          },
          undefined,
        );
      }),
    );
    await harness.runtime.directory.refresh();
  });

  test('shows one page of 25, counts by state over all, and a pager', async () => {
    const page = await statusPage();
    const total = harness.runtime.directory.entries.length;
    assert.match(page, new RegExp(`data-total="${total}"`));
    assert.match(page, /data-state-count="paused">\s*<a[^>]*>Paused: <strong>5<\/strong>/);
    assert.equal(page.match(/<tr data-row=/g)?.length, 25);
    assert.equal(page.match(/<section class="account"/g)?.length, 25);
    assert.match(page, new RegExp(`page 1 of ${Math.ceil(total / 25)}`));
    assert.match(page, /rel="next" href="\/api\/status\?page=2"/);
  });

  test('searches by id, user and state', async () => {
    assert.deepEqual(rows(await statusPage('?q=bulk-042')), ['bulk-042']);
    assert.deepEqual(rows(await statusPage('?q=USER13%40')), ['bulk-013']);
    assert.deepEqual(rows(await statusPage('?state=paused')), ['bulk-000', 'bulk-001', 'bulk-002', 'bulk-003', 'bulk-004']);
  });

  test('escapes what admins typed', async () => {
    const page = await statusPage('?q=bulk-007');
    assert.ok(!page.includes('<script>x</script>'));
    assert.match(page, /&lt;script&gt;x&lt;\/script&gt;/);
  });
});

describe('the page forms', () => {
  const form = (fields: Record<string, string>, headers: Record<string, string> = {}) =>
    accountCreate(
      new HttpRequest({
        method: 'POST',
        url: `${BASE}/api/accounts`,
        params: {},
        headers: { 'content-type': 'application/x-www-form-urlencoded', 'sec-fetch-site': 'same-origin', ...headers },
        body: { string: new URLSearchParams(fields).toString() },
      }),
    );

  test('create an account and go back to the page, where it shows with its audit row', async () => {
    const response = await form({
      action: 'create',
      id: 'formbox',
      provider: 'custom',
      clientId: CLIENT_ID,
      user: ALICE.email,
      issuer: idp.issuer,
      scopes: SCOPES.join(' '),
      smtpHost: '127.0.0.1',
      smtpPort: String(sink.port),
      smtpSecurity: 'starttls',
      clientAuthType: 'secret',
      clientSecret: CLIENT_SECRET,
      more: JSON.stringify({ smtp: { caFile: caPath } }),
    });
    assert.equal(response.status, 303, String(response.body));
    assert.match(
      String((response.headers as Record<string, string>).Location),
      /^\/api\/status\?q=formbox&done=create#account-formbox$/,
    );
    const page = await statusPage('?q=formbox');
    assert.match(page, /data-account="formbox"/);
    assert.match(page, /data-managed="table"/);
    assert.ok(!page.includes(CLIENT_SECRET));
    assert.equal(await harness.runtime.secrets.get('formbox-client-secret'), CLIENT_SECRET);
  });

  test('the edit form, sent back unchanged, changes nothing; pause and delete work from the card', async () => {
    const before = (await harness.runtime.accountConfigs.get('formbox'))!.config;
    const page = await statusPage('?q=formbox');
    const edit = /<input type="hidden" name="action" value="update" \/>([\s\S]*?)<\/form>/.exec(page)?.[1];
    assert.ok(edit, 'the card has an edit form');
    const decode = (text: string) =>
      text
        .replace(/&quot;/g, '"')
        .replace(/&#39;/g, "'")
        .replace(/&lt;/g, '<')
        .replace(/&gt;/g, '>')
        .replace(/&amp;/g, '&');
    const fields: Record<string, string> = { action: 'update', id: 'formbox' };
    for (const [, name, value] of edit.matchAll(/<input name="([^"]+)"(?: type="[^"]*")?(?: [a-z-]+="[^"]*")* value="([^"]*)"/g))
      fields[name!] = decode(value!);
    for (const [, name, options] of edit.matchAll(/<select name="([^"]+)">([\s\S]*?)<\/select>/g)) {
      const selected = /<option value="([^"]*)" selected>/.exec(options!);
      if (selected) fields[name!] = selected[1]!;
    }
    for (const [, name, text] of edit.matchAll(/<textarea name="([^"]+)"[^>]*>([\s\S]*?)<\/textarea>/g))
      fields[name!] = decode(text!);
    const saved = await form(fields);
    assert.equal(saved.status, 303, String(saved.body));
    assert.deepEqual((await harness.runtime.accountConfigs.get('formbox'))!.config, before);
    assert.deepEqual((await harness.runtime.accountAudit.recent())[0]?.changes, []);

    assert.equal((await form({ action: 'pause', id: 'formbox' })).status, 303);
    assert.equal(harness.runtime.directory.entry('formbox')?.state, 'paused');
    assert.equal((await form({ action: 'delete', id: 'formbox' })).status, 303);
    assert.equal(harness.runtime.directory.entry('formbox'), undefined);
    assert.equal(await harness.runtime.secrets.get('formbox-client-secret'), undefined);
  });

  test('a form with a bad field answers a page naming it', async () => {
    const response = await form({ action: 'create', id: 'formbad', provider: 'custom', clientId: 'x', user: 'not-an-address' });
    assert.equal(response.status, 400);
    assert.match(String(response.body), /<li>user: must be an email address<\/li>/);
  });

  test('a form posted from another site is refused', async () => {
    const response = await form({ action: 'delete', id: 'elsewhere' }, { 'sec-fetch-site': 'cross-site' });
    assert.equal(response.status, 403);
    assert.ok(harness.runtime.directory.entry('elsewhere'));
  });
});

function rows(page: string): string[] {
  return [...page.matchAll(/<tr data-row="([^"]+)"/g)].map((match) => match[1]!);
}
