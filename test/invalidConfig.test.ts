import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { accountList } from '../functions/accountList';
import { admin } from '../functions/admin';
import { health } from '../functions/health';
import { setApp } from '../shared/app';
import { HttpRequest } from './support/azureFunctions';

const saved = process.env.MAIL_ACCOUNTS;
before(() => {
  setApp(undefined);
  process.env.MAIL_ACCOUNTS = JSON.stringify([
    { id: 'main', provider: 'microsoft', clientId: 'x', user: 'a@contoso.com', smtp: { port: 'x' } },
  ]);
});
after(() => {
  if (saved === undefined) delete process.env.MAIL_ACCOUNTS;
  else process.env.MAIL_ACCOUNTS = saved;
  setApp(undefined);
});

const get = (url: string) => new HttpRequest({ method: 'GET', url });

test('an invalid MAIL_ACCOUNTS shows on the status page with the field path, not as a blank 500', async () => {
  const page = await admin(get('http://127.0.0.1:7071/api/status'));
  assert.equal(page.status, 500);
  assert.match(String(page.body), /The account configuration is invalid/);
  assert.match(String(page.body), /MAIL_ACCOUNTS\[0\]\.smtp\.port/);
});

test('an invalid MAIL_ACCOUNTS answers /api/accounts with invalid_config and the reasons', async () => {
  const reply = await accountList(get('http://127.0.0.1:7071/api/accounts'));
  assert.equal(reply.status, 500);
  const body = reply.jsonBody as { error: string; reasons: string };
  assert.equal(body.error, 'invalid_config');
  assert.match(body.reasons, /MAIL_ACCOUNTS\[0\]\.smtp\.port/);
});

test('with an invalid MAIL_ACCOUNTS, /api/health says degraded and nothing more', async () => {
  const reply = await health(get('http://127.0.0.1:7071/api/health'));
  assert.equal(reply.status, 503);
  assert.deepEqual(reply.jsonBody, { status: 'degraded' });
});
