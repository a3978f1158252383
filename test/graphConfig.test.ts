/**
 * The Graph settings of an account: Microsoft only, refused by field name elsewhere, with the preset's figures; and
 * what the status page says of them.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { AccountStatus } from '../shared/accounts/accountStatus';
import { accountView } from '../shared/admin/accountView';
import { statusPage } from '../shared/admin/adminPage';
import { parseAccounts } from '../shared/config';
import { ConfigError } from '../shared/errors';

const TENANT = '3f1c2a9e-7b4d-4e21-9a6c-0d5e8b7f2c41';
const microsoft = { id: 'm365', provider: 'microsoft', tenantId: TENANT, clientId: 'app', user: 'notify@contoso.com' };

test('a Microsoft account defaults to SMTP, saves to Sent Items, and carries Graph figures from the preset', () => {
  const [account] = parseAccounts([microsoft]);
  assert.equal(account?.transport, 'smtp');
  assert.deepEqual(
    {
      baseUrl: account.graph?.baseUrl,
      saveToSentItems: account.graph?.saveToSentItems,
      concurrent: account.graph?.concurrentRequests,
      perTenMinutes: account.graph?.requestsPerTenMinutes,
      perMinute: account.limits.messagesPerMinute,
    },
    { baseUrl: 'https://graph.microsoft.com', saveToSentItems: true, concurrent: 4, perTenMinutes: 10_000, perMinute: 30 },
  );
  const [graph] = parseAccounts([
    { ...microsoft, transport: 'graph', saveToSentItems: false, graph: { baseUrl: 'http://127.0.0.1:7082/' } },
  ]);
  assert.deepEqual(
    [graph?.transport, graph?.graph?.saveToSentItems, graph?.graph?.baseUrl],
    ['graph', false, 'http://127.0.0.1:7082'],
  );
});

test('transport graph or auto, saveToSentItems and graph are refused for google and custom, by field name', () => {
  for (const [input, field] of [
    [
      { id: 'g', provider: 'google', clientId: 'c', user: 'a@gmail.com', transport: 'graph' },
      /MAIL_ACCOUNTS\[0\]\.transport: only provider "microsoft"/,
    ],
    [{ id: 'g', provider: 'google', clientId: 'c', user: 'a@gmail.com', transport: 'auto' }, /MAIL_ACCOUNTS\[0\]\.transport:/],
    [
      {
        id: 'c',
        provider: 'custom',
        clientId: 'c',
        user: 'a@example.com',
        oauth: { issuer: 'https://id.example.com', scopes: ['smtp'] },
        smtp: { host: 'mail.example.com' },
        saveToSentItems: true,
      },
      /MAIL_ACCOUNTS\[0\]\.saveToSentItems: only provider "microsoft"/,
    ],
  ] as const) {
    assert.throws(
      () => parseAccounts([input]),
      (error: unknown) => error instanceof ConfigError && field.test(error.message),
    );
  }
  const [google] = parseAccounts([{ id: 'g', provider: 'google', clientId: 'c', user: 'a@gmail.com', transport: 'smtp' }]);
  assert.equal(google?.graph, undefined);
});

test('graph.baseUrl must be https, except for a local stand-in on loopback', () => {
  assert.throws(
    () => parseAccounts([{ ...microsoft, graph: { baseUrl: 'http://graph.example.com' } }]),
    (error: unknown) => error instanceof ConfigError && /graph\.baseUrl: must use https/.test(error.message),
  );
});

test('a Microsoft issuer may point at a stand-in on loopback only', () => {
  assert.equal(
    parseAccounts([{ ...microsoft, oauth: { issuer: 'http://127.0.0.1:7080' } }])[0]?.oauth.issuer,
    'http://127.0.0.1:7080',
  );
  assert.throws(
    () => parseAccounts([{ ...microsoft, oauth: { issuer: 'https://login.example.com' } }]),
    (error: unknown) =>
      error instanceof ConfigError &&
      /oauth\.issuer: the issuer for provider "microsoft" comes from the preset/.test(error.message),
  );
});

test('the status page says "Re-authorize to enable Graph" for a grant without Mail.Send, and shows the transport', () => {
  const [account] = parseAccounts([{ ...microsoft, transport: 'auto' }]);
  const status: AccountStatus = {
    accountId: 'm365',
    state: 'ready',
    authorizedAt: '2026-12-01T10:00:00.000Z',
    scopes: 'https://outlook.office.com/SMTP.Send offline_access openid profile email',
  };
  const now = Date.parse('2026-12-07T10:00:00.000Z');
  const view = accountView(account!, status, undefined, 'https://outbox.example.com', now);
  assert.equal(view.transport, 'auto');
  assert.match(view.graphNotice ?? '', /^Re-authorize to enable Graph: notify@contoso\.com consented to SMTP only/);
  const page = String(statusPage({ views: [view], now }));
  assert.match(page, /data-notice="graph-consent">Re-authorize to enable Graph/);
  assert.match(page, /SMTP, Microsoft Graph once SMTP AUTH is disabled/);
  const granted = { ...status, scopes: `${status.scopes} https://graph.microsoft.com/Mail.Send` };
  assert.equal(accountView(account!, granted, undefined, 'https://outbox.example.com', now).graphNotice, null);
});
