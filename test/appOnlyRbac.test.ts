/**
 * App-only sending under Exchange App RBAC: the app holds no API permission in Entra, Exchange grants it
 * 'Application SMTP.SendAsApp' itself, and the token therefore carries no `roles` claim. The local identity provider
 * issues exactly such a token (no appRoles); the SMTP sink accepts it the way Exchange would under App RBAC:
 * the right audience, the right app, no role required. The message goes through the real send path on Azurite.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { decodeJwt } from 'jose';
import { startAzurite, type Azurite } from '../local/peers/azurite';
import { startIdentityProvider, type IdentityProvider } from '../local/peers/identity/identityProvider';
import { startSmtpSink, type SmtpSink } from '../local/peers/smtpSink';
import type { Account } from '../shared/config';
import { PRESETS } from '../shared/config/presets';
import { AccountError } from '../shared/errors';
import { appOnlyRefusalHint, checkAppOnlyToken, fetchAppOnlyToken } from '../shared/oauth/clientCredentials';
import { loadTestTls } from './support/certs';
import { startSendHarness, testAccount, type SendHarness } from './support/sendHarness';

const CLIENT_ID = 'outbox-daemon';
const CLIENT_SECRET = 'app-rbac-client-secret-7c41d0e2';
const CLIENT_SECRET_NAME = 'reports-client-secret';
const MAILBOX = 'reports@contoso.test';
const EXCHANGE = 'https://outlook.office365.com';

let azurite: Azurite;
let idp: IdentityProvider;
let sink: SmtpSink;
let harness: SendHarness;
let account: Account;
/** What the sink saw: each XOAUTH2 login and whether it let it in. */
const logins: Array<{ user: string; accepted: boolean; roles: string[] | undefined }> = [];
/** Set to make the sink refuse every token, as Exchange does when the role assignment or the mailbox scope is missing. */
let refuseAll = false;

before(async () => {
  const tls = await loadTestTls();
  azurite = await startAzurite();
  // No appRoles: client_credentials tokens come without a roles claim, as Entra issues them under App RBAC.
  idp = await startIdentityProvider({
    clients: [
      { clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, authMethod: 'client_secret_post', grantTypes: ['client_credentials'] },
    ],
    users: [],
  });
  sink = await startSmtpSink({
    security: 'starttls',
    key: tls.key,
    cert: tls.cert,
    // Exchange under App RBAC: a valid token for Exchange from the app that holds the role assignment.
    verifyToken: async (user, token) => {
      const verified = await idp.verifyAccessToken(token);
      const audiences = [verified?.aud].flat();
      const accepted =
        !refuseAll && !!verified && verified.clientId === CLIENT_ID && audiences.includes(EXCHANGE) && user === MAILBOX;
      logins.push({ user, accepted, roles: verified?.roles });
      return accepted;
    },
  });
  harness = await startSendHarness({
    connectionString: azurite.connectionString,
    seedTokens: false,
    accounts: [
      testAccount({
        id: 'reports',
        port: sink.port,
        flow: 'client_credentials',
        clientId: CLIENT_ID,
        clientAuth: { type: 'secret', secretName: CLIENT_SECRET_NAME },
        user: MAILBOX,
        oauth: { issuer: idp.issuer, scopes: [`${EXCHANGE}/.default`] },
        default: true,
      }),
    ],
  });
  await harness.runtime.secrets.set(CLIENT_SECRET_NAME, CLIENT_SECRET);
  account = harness.accounts[0]!;
  // The Microsoft preset's expectation, which a custom account does not carry: the token must be for Exchange.
  account.oauth.appOnlyToken = PRESETS.microsoft.appOnlyToken;
});

after(async () => {
  await harness?.stop();
  await Promise.allSettled([sink?.stop(), idp?.stop(), azurite?.stop()]);
});

describe('app-only tokens under Exchange App RBAC (no roles claim)', () => {
  test('are fetched and accepted: audience checked, no role required', async () => {
    const token = await fetchAppOnlyToken(harness.runtime, account);
    const claims = decodeJwt(token.accessToken);
    assert.equal(claims.aud, EXCHANGE);
    assert.equal(claims.roles, undefined, 'the provider issued a token without roles, as under App RBAC');
    assert.doesNotThrow(() => checkAppOnlyToken(account, token.accessToken));
  });

  test('are sent with: the message goes out through SMTP with that token', async () => {
    await harness.enqueue({ id: 'rbac-1', account: 'reports', to: ['someone@example.com'], subject: 'App RBAC', text: 'hello' });
    await harness.drain();
    const record = await harness.ledger('rbac-1');
    assert.equal(record?.status, 'sent', JSON.stringify(record));
    assert.equal(sink.received.length, 1);
    assert.ok(sink.received[0]!.raw.toString('utf8').includes('Subject: App RBAC'));
    assert.ok(
      logins.length > 0 && logins.every((l) => l.accepted && l.user === MAILBOX && l.roles === undefined),
      JSON.stringify(logins),
    );
  });

  test('a token for another audience is still refused before any connection', async () => {
    const graph = await idp.signJwt({ aud: 'https://graph.microsoft.com' });
    assert.throws(() => checkAppOnlyToken(account, graph), /audience https:\/\/graph\.microsoft\.com.*Microsoft Graph token/);
  });

  test('roles without SMTP.SendAsApp are refused with both setups explained', async () => {
    const imapOnly = await idp.signJwt({ aud: EXCHANGE, roles: ['IMAP.AccessAsApp'] });
    assert.throws(
      () => checkAppOnlyToken(account, imapOnly),
      (error: unknown) =>
        error instanceof AccountError &&
        error.code === 'config_error' &&
        /no SMTP\.SendAsApp role \(roles: IMAP\.AccessAsApp\)/.test(error.message) &&
        /grant admin consent/.test(error.message) &&
        /New-ManagementRoleAssignment -Role 'Application SMTP\.SendAsApp' -App <client id>/.test(error.message),
    );
    const withRole = await idp.signJwt({ aud: EXCHANGE, roles: ['SMTP.SendAsApp'] });
    assert.doesNotThrow(() => checkAppOnlyToken(account, withRole));
  });
});

describe('appOnlyRefusalHint', () => {
  test("names both setups with the account's app and mailbox, and what to check in each", async () => {
    const hint = appOnlyRefusalHint(account);
    for (const expected of [
      `Get-ServicePrincipal -Identity ${CLIENT_ID}`,
      `Get-ManagementRoleAssignment -App ${CLIENT_ID} -Role 'Application SMTP.SendAsApp'`,
      `Test-ServicePrincipalAuthorization -Identity ${CLIENT_ID} -Resource ${MAILBOX}`,
      'Entra application permission SMTP.SendAsApp',
      'admin consent',
      `Add-MailboxPermission -Identity ${MAILBOX}`,
      `Get-CASMailbox ${MAILBOX}`,
    ])
      assert.ok(hint.includes(expected), `the hint says ${expected}:\n${hint}`);
  });

  test('tells which setup the token points to', async () => {
    assert.match(appOnlyRefusalHint(account, await idp.signJwt({ aud: EXCHANGE })), /no roles claim, as with Exchange App RBAC/);
    assert.match(
      appOnlyRefusalHint(account, await idp.signJwt({ aud: EXCHANGE, roles: ['SMTP.SendAsApp'] })),
      /carried the roles SMTP\.SendAsApp, as with the Entra permission/,
    );
    assert.doesNotMatch(appOnlyRefusalHint(account, 'not-a-jwt'), /carried/);
  });

  test('when Exchange then refuses the token, the account shows a configuration problem naming both setups', async () => {
    refuseAll = true;
    try {
      await harness.enqueue({ id: 'rbac-refused', account: 'reports', to: ['someone@example.com'], subject: 'x', text: 'x' });
      await harness.runFor(3_000);
      const status = await harness.runtime.accountStatus.get('reports');
      assert.equal(status?.state, 'configuration_error');
      assert.equal(status?.lastErrorCode, 'smtp_auth_rejected');
      assert.match(
        status?.lastError ?? '',
        /1\. Exchange App RBAC: .*Get-ManagementRoleAssignment .*2\. Entra application permission SMTP\.SendAsApp/,
      );
      assert.match(status?.lastError ?? '', /SMTP\.SendAsApp/);
      assert.match(status?.lastError ?? '', /no roles claim, as with Exchange App RBAC/);
      const row = await harness.ledger('rbac-refused');
      assert.equal(row?.status, 'deferred');
      assert.equal(row?.code, 'config_error');
    } finally {
      refuseAll = false;
    }
  });
});
