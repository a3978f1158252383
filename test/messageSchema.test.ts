import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { parseAccounts } from '../shared/config';
import { ConfigError } from '../shared/errors';
import { mailMessageJsonSchema } from '../shared/message/jsonSchema';

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
