import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { AccountStatus } from '../shared/accounts/accountStatus';
import { accountView } from '../shared/admin/accountView';
import { statusPage } from '../shared/admin/adminPage';
import { parseAccounts } from '../shared/config';

const NOW = Date.parse('2026-12-01T12:00:00Z');
const [account] = parseAccounts([
  {
    id: 'main',
    provider: 'custom',
    clientId: 'outbox',
    clientAuth: { type: 'none' },
    user: 'main@example.com',
    oauth: { issuer: 'https://idp.example.com/', scopes: ['smtp'] },
    smtp: { host: 'smtp.example.com', port: 587, security: 'starttls' },
  },
]);

function render(status: AccountStatus | undefined): string {
  return String(statusPage({ views: [accountView(account!, status, undefined, 'https://outbox.example.com', NOW)], now: NOW }));
}

const revoked: AccountStatus = {
  accountId: 'main',
  state: 'reauthorization_required',
  authorizedAt: '2026-11-30T08:00:00Z',
  tokenExpiresAt: '2026-12-01T12:30:00Z',
  lastError: 'The grant was revoked or has expired',
  lastErrorCode: 'invalid_grant',
};

test('an authorized account offers Re-authorize; a new one Authorize', () => {
  assert.match(render(revoked), />\s*Re-authorize\s*</);
  assert.match(render(undefined), />\s*Authorize\s*</);
  assert.doesNotMatch(render(undefined), /Re-authorize/);
});

test('a dead grant shows no live token expiry', () => {
  const page = render(revoked);
  assert.doesNotMatch(page, /2026-12-01 12:30 UTC/);
  assert.match(page, /<dt>Token expires<\/dt>\s*<dd>\s*no valid token\s*<\/dd>/);
  assert.match(render({ ...revoked, state: 'ready', lastError: undefined! }), /2026-12-01 12:30 UTC/);
});

test('the reason is shown once', () => {
  const page = render(revoked);
  assert.equal(page.split('The grant was revoked or has expired').length - 1, 1, page);
});

test('with no account configured, the page says how to add one', () => {
  const page = String(statusPage({ views: [], now: NOW }));
  assert.match(page, /No account is configured\. Add one to the app setting <code>MAIL_ACCOUNTS<\/code>/);
});
