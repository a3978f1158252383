import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { parseAccounts } from '../shared/config';
import { ConfigError } from '../shared/errors';
import { decodeQueueMessage, printable } from '../shared/message/decodeQueueMessage';
import { mailMessageJsonSchema } from '../shared/message/jsonSchema';
import { envelopeAddress, isMailAddress } from '../shared/message/mailAddress';
import { isMimeMessage } from '../shared/message/messageSchema';

test('the published JSON Schema is the one generated from the zod schema (npm run schema)', () => {
  const published = JSON.parse(readFileSync(new URL('../shared/message/mail-message.v1.schema.json', import.meta.url), 'utf8'));
  assert.deepEqual(published, JSON.parse(JSON.stringify(mailMessageJsonSchema())));
  // Two kinds of message: fields, or a finished MIME message; each refuses unknown fields.
  assert.deepEqual(
    published.anyOf.map((kind: { additionalProperties: boolean; required: string[] }) => [
      kind.additionalProperties,
      kind.required,
    ]),
    [
      [false, ['subject']],
      [false, ['mime']],
    ],
  );
});

test('an invalid account configuration names the bad field', () => {
  const base = {
    id: 'main',
    provider: 'microsoft',
    tenantId: '00000000-0000-0000-0000-000000000000',
    clientId: 'c',
    user: 'a@contoso.com',
  };
  assert.throws(
    () => parseAccounts([{ ...base, smtp: { port: 'x' } }]),
    (e: unknown) => e instanceof ConfigError && /MAIL_ACCOUNTS\[0\]\.smtp\.port/.test(e.message),
  );
  assert.throws(
    () => parseAccounts([{ ...base, oauth: { scopes: ['https://graph.microsoft.com/SMTP.Send'] } }]),
    /come from the preset/,
  );
  assert.throws(
    () =>
      parseAccounts([
        {
          ...base,
          provider: 'custom',
          oauth: { issuer: 'https://idp.example.com', scopes: ['https://outlook.office365.com/.default', 'openid'] },
          smtp: { host: 'smtp.example.com' },
        },
      ]),
    /\.default" cannot be mixed/,
  );
  assert.throws(() => parseAccounts([{ ...base, tenantId: undefined }]), /tenantId: required/);
  assert.throws(() => parseAccounts([base, base]), /used twice/);
  const [account] = parseAccounts([base]);
  assert.deepEqual(account!.oauth.scopes, [
    'https://outlook.office.com/SMTP.Send',
    'offline_access',
    'openid',
    'profile',
    'email',
  ]);
  assert.equal(account!.smtp.host, 'smtp.office365.com');
  assert.equal(account!.limits.concurrentConnections, 3);
  assert.equal(account!.limits.messagesPerMinute, 30);
});

test('addresses: internationalized domains and SMTPUTF8 local parts are accepted, and a MIME envelope is sent in punycode', () => {
  for (const good of ['a@bücher.de', 'jürgen@bücher.de', 'a@例え.テスト', 'a@xn--bcher-kva.de', "o'neil@example.com"])
    assert.equal(isMailAddress(good), true, good);
  for (const bad of ['a@b', 'a@-x.de', 'a@x..de', 'a b@x.de', '@x.de', 'a@', 'a.@x.de'])
    assert.equal(isMailAddress(bad), false, bad);
  assert.equal(envelopeAddress('a@Bücher.de'), 'a@xn--bcher-kva.de');
  assert.equal(envelopeAddress('jürgen@bücher.de'), 'jürgen@bücher.de', 'a UTF-8 local part needs SMTPUTF8 anyway');
  const decoded = decodeQueueMessage(
    JSON.stringify({ id: 'm', mime: { blob: 'mail-mime/x.eml', envelope: { from: 'a@example.com', to: ['b@bücher.de'] } } }),
  );
  assert.ok(decoded.ok && isMimeMessage(decoded.message));
  assert.deepEqual(decoded.message.mime.envelope.to, ['b@xn--bcher-kva.de']);
});

test('a reason shows control and invisible characters as escapes, never raw', () => {
  assert.equal(printable('a\r\nb\t\u0007\u202e\ufeff\u200b'), 'a\\r\\nb\\t\\u0007\\u202e\\ufeff\\u200b');
  assert.equal(printable('ünïcode – fine'), 'ünïcode – fine');
  const decoded = decodeQueueMessage(JSON.stringify({ to: ['a@example.com'], subject: 's', headers: { 'X\r\nBcc: x': '1' } }));
  assert.equal(decoded.ok, false);
  assert.equal(
    !decoded.ok && decoded.reason,
    'The message is invalid: headers.X\\r\\nBcc: x: header names are letters, digits and dashes',
  );
});
