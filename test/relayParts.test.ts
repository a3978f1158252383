/**
 * The relay's pure parts: configuration errors that name the field, password hashes, IP ranges, and the
 * header reading that the sender check and the Bcc cut rely on. Plus `npm run relay -- hash-password`.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { promisify } from 'node:util';
import { parseRelayConfig } from '../relay/config';
import { addressBytes, bestMatch, clientKey, inRange, parseIpRange } from '../relay/ipRanges';
import { LoginThrottle } from '../relay/loginThrottle';
import { findHeaderEnd, headerFields, senderHeaders, withoutBcc } from '../shared/message/mimeHeaders';
import { hashPassword, passwordHashProblem, verifyPassword } from '../relay/passwordHash';
import { checkSenderHeaders } from '../relay/headerChecks';
import { createStorageTarget } from '../relay/storageTarget';
import { TEST_SCRYPT } from './support/relayHarness';

const HASH = 'scrypt$N=1024,r=8,p=1$c2FsdHNhbHRzYWx0c2FsdA==$ZGVyaXZlZGtleWRlcml2ZWRrZXlkZXJpdmVka2V5MDA=';
const base = () => ({
  listeners: { starttls: { port: 587 } },
  tls: { certFile: 'cert.pem', keyFile: 'key.pem' },
  storage: { connectionString: 'UseDevelopmentStorage=true' },
  devices: [{ user: 'scanner', passwordHash: HASH, account: 'default', allowedFrom: ['scanner@contoso.com'] }] as unknown[],
});

function configError(json: unknown): string {
  try {
    parseRelayConfig(json);
  } catch (error) {
    return (error as Error).message;
  }
  assert.fail('the configuration was accepted');
}

describe('relay config', () => {
  it('resolves defaults: 35 MB, 500 recipients, five failures per 15 minutes, and the limits of device > account > relay', () => {
    const config = parseRelayConfig({
      ...base(),
      limits: { maxRecipients: 100 },
      accounts: { gmail: { maxMessageBytes: 25 * 1024 * 1024 } },
      devices: [
        { user: 'a', passwordHash: HASH, account: 'default', allowedFrom: ['A@Contoso.com'] },
        { user: 'b', passwordHash: HASH, account: 'gmail', allowedFrom: ['b@contoso.com'], maxRecipients: 5 },
      ],
    });
    assert.deepEqual(
      config.devices.map((d) => [d.name, d.maxMessageBytes, d.maxRecipients, d.allowedFrom]),
      [
        ['a', 35 * 1024 * 1024, 100, ['a@contoso.com']],
        ['b', 25 * 1024 * 1024, 5, ['b@contoso.com']],
      ],
    );
    assert.equal(config.maxMessageBytes, 35 * 1024 * 1024);
    assert.deepEqual(config.loginFailures, {
      maxFailures: 5,
      windowMs: 900_000,
      blockMs: 900_000,
      delayStepMs: 1000,
      maxDelayMs: 5000,
    });
  });

  for (const { name, change, message } of [
    {
      name: 'a password that is not a hash',
      change: (c: ReturnType<typeof base>) => (c.devices[0] = { ...(c.devices[0] as object), passwordHash: 'scanner' }),
      message: /RELAY_CONFIG\.devices\[0\]\.passwordHash: is not a password hash of the form scrypt/,
    },
    {
      name: 'a network with host bits',
      change: (c: ReturnType<typeof base>) => (c.devices[0] = { ...(c.devices[0] as object), sourceRanges: ['10.1.2.3/16'] }),
      message:
        /RELAY_CONFIG\.devices\[0\]\.sourceRanges\[0\]: "10\.1\.2\.3\/16" has host bits set: did you mean 10\.1\.0\.0\/16\?/,
    },
    {
      name: 'a device without user name and without networks',
      change: (c: ReturnType<typeof base>) =>
        c.devices.push({ name: 'erp', account: 'default', allowedFrom: ['erp@contoso.com'] }),
      message: /RELAY_CONFIG\.devices\[1\]\.sourceRanges: a device without a user name is recognized by its address only/,
    },
    {
      name: 'the same user name twice',
      change: (c: ReturnType<typeof base>) =>
        c.devices.push({ user: 'SCANNER', passwordHash: HASH, account: 'default', allowedFrom: ['x@contoso.com'] }),
      message: /RELAY_CONFIG\.devices\[1\]\.user: "SCANNER" is also devices\[0\]\.user/,
    },
    {
      name: 'one network for two address-only devices',
      change: (c: ReturnType<typeof base>) => {
        c.devices.push({ name: 'a', account: 'default', allowedFrom: ['a@contoso.com'], sourceRanges: ['10.0.0.0/8'] });
        c.devices.push({ name: 'b', account: 'default', allowedFrom: ['b@contoso.com'], sourceRanges: ['10.0.0.0/8'] });
      },
      message: /RELAY_CONFIG\.devices\[2\]\.sourceRanges: 10\.0\.0\.0\/8 also belongs to devices\[1\]/,
    },
    {
      name: 'a TLS listener without a certificate',
      change: (c: ReturnType<typeof base>) => delete (c as { tls?: unknown }).tls,
      message: /RELAY_CONFIG\.tls: a certificate and key .* are needed for the starttls and tls listeners/,
    },
    {
      name: 'a plain port without networks',
      change: (c: ReturnType<typeof base>) => Object.assign(c.listeners, { plain: { port: 25, allowFrom: [] } }),
      message: /RELAY_CONFIG\.listeners\.plain\.allowFrom: list the networks allowed to use this port/,
    },
    {
      name: 'a misspelt key',
      change: (c: ReturnType<typeof base>) => Object.assign(c, { devicez: [] }),
      message: /RELAY_CONFIG: Unrecognized key: "devicez"/,
    },
    {
      name: 'an account id in capitals',
      change: (c: ReturnType<typeof base>) => (c.devices[0] = { ...(c.devices[0] as object), account: 'Default' }),
      message: /RELAY_CONFIG\.devices\[0\]\.account: is not an account id/,
    },
  ]) {
    it(`names the field of ${name}`, () => {
      const config = base();
      change(config);
      assert.match(configError(config), message);
    });
  }
});

describe('relay password hashes', () => {
  it('hash and verify with scrypt; a wrong password is false, not an error', async () => {
    const hash = await hashPassword('s3cret – ünïcode', TEST_SCRYPT);
    assert.match(hash, /^scrypt\$N=1024,r=8,p=1\$[A-Za-z0-9+/]+=*\$[A-Za-z0-9+/]+=*$/);
    assert.equal(passwordHashProblem(hash), undefined);
    assert.equal(await verifyPassword('s3cret – ünïcode', hash), true);
    assert.equal(await verifyPassword('s3cret – unicode', hash), false);
    assert.notEqual(await hashPassword('same', TEST_SCRYPT), await hashPassword('same', TEST_SCRYPT), 'salted');
  });

  it('refuses parameters that would make one login take gigabytes', () => {
    assert.match(passwordHashProblem(HASH.replace('N=1024', 'N=4194304')) ?? '', /N must be a power of two/);
    assert.match(passwordHashProblem(HASH.replace('N=1024', 'N=1000')) ?? '', /N must be a power of two/);
  });

  it('`npm run relay -- hash-password` prints a hash of the line on stdin that verifies, with the default parameters', async () => {
    const root = path.resolve(import.meta.dirname, '..');
    const child = promisify(execFile)(process.execPath, ['--import', 'tsx', 'relay/main.ts', 'hash-password'], { cwd: root });
    child.child.stdin!.end('printer-password\n');
    const { stdout } = await child;
    const hash = stdout.trim();
    assert.match(hash, /^scrypt\$N=16384,r=8,p=5\$/);
    assert.equal(await verifyPassword('printer-password', hash), true);
  });
});

describe('relay IP ranges', () => {
  it('matches IPv4, IPv6 and IPv4-mapped IPv6 clients', () => {
    const lan = parseIpRange('10.20.0.0/16');
    assert.equal(inRange('10.20.3.4', lan), true);
    assert.equal(inRange('::ffff:10.20.3.4', lan), true);
    assert.equal(inRange('10.21.0.1', lan), false);
    const v6 = parseIpRange('2001:db8:aa::/48');
    assert.equal(inRange('2001:db8:aa:1::5', v6), true);
    assert.equal(inRange('2001:db8:ab::5', v6), false);
    assert.equal(inRange('10.20.3.4', v6), false);
    assert.equal(inRange('not-an-address', lan), false);
    assert.deepEqual([...addressBytes('::1')!], [...Array(15).fill(0), 1]);
    assert.equal(inRange('127.0.0.1', parseIpRange('127.0.0.1')), true, 'a single address is a /32');
  });

  it('counts failed logins per IPv4 address and per IPv6 /64', () => {
    assert.equal(clientKey('10.1.2.3'), '10.1.2.3');
    assert.equal(clientKey('::ffff:10.1.2.3'), '10.1.2.3');
    assert.equal(clientKey('2001:db8:aa:bb:1::5'), '2001:0db8:00aa:00bb::/64');
    assert.equal(clientKey('2001:db8:aa:bb:ffff::9'), clientKey('2001:db8:aa:bb::1'));
    assert.notEqual(clientKey('2001:db8:aa:bc::1'), clientKey('2001:db8:aa:bb::1'));
  });

  it('picks the most specific range', () => {
    const entries = [
      { range: parseIpRange('10.0.0.0/8'), value: 'site' },
      { range: parseIpRange('10.1.2.0/24'), value: 'printer room' },
    ];
    assert.equal(bestMatch('10.1.2.9', entries), 'printer room');
    assert.equal(bestMatch('10.9.9.9', entries), 'site');
    assert.equal(bestMatch('192.168.0.1', entries), undefined);
  });
});

describe('relay login throttle', () => {
  it('slows each failure, blocks after the last allowed one, and forgets after the block', () => {
    let now = 0;
    const throttle = new LoginThrottle(
      { maxFailures: 3, windowMs: 60_000, blockMs: 30_000, delayStepMs: 500, maxDelayMs: 1_200 },
      () => now,
    );
    assert.deepEqual(throttle.fail('a'), { delayMs: 500, blocked: false, failures: 1 });
    assert.deepEqual(throttle.fail('a'), { delayMs: 1000, blocked: false, failures: 2 });
    assert.deepEqual(throttle.fail('a'), { delayMs: 1200, blocked: true, failures: 3 });
    assert.equal(throttle.blockedFor('a'), 30_000);
    assert.equal(throttle.blockedFor('b'), 0);
    now += 30_000;
    assert.equal(throttle.blockedFor('a'), 0);
    assert.equal(throttle.fail('a').failures, 1, 'a fresh start after the block');
  });
});

describe('relay header reading', () => {
  const message = (header: string, body = 'Body\r\n') => Buffer.from(`${header}\r\n\r\n${body}`, 'utf8');

  it('finds the end of the header with CRLF and with bare LF line endings', () => {
    assert.equal(findHeaderEnd(Buffer.from('A: 1\r\nB: 2\r\n\r\nbody')), 14);
    assert.equal(findHeaderEnd(Buffer.from('A: 1\nB: 2\n\nbody')), 11);
    assert.equal(findHeaderEnd(Buffer.from('A: 1\r\nB: 2\r\n')), undefined);
  });

  it('reads From and Sender, folded, grouped, with encoded names', () => {
    const header = message(
      'From: =?UTF-8?Q?Zo=C3=AB?= <Zoe@Contoso.com>,\r\n\t"Team, Sales" <sales@contoso.com>\r\nSender: undisclosed: ops@contoso.com;\r\nTo: x@y.z',
    );
    assert.deepEqual(senderHeaders(header), {
      fromFields: 1,
      from: ['zoe@contoso.com', 'sales@contoso.com'],
      sender: ['ops@contoso.com'],
      senderFields: 1,
    });
  });

  it('cuts every Bcc field, folded lines included, and nothing else', () => {
    const header =
      'From: a@contoso.com\r\nBcc: one@x.test,\r\n two@x.test\r\nTo: b@x.test\r\nbcc: three@x.test\r\nSubject: s\r\n\r\n';
    const cut = withoutBcc(Buffer.from(header));
    assert.equal(cut.toString(), 'From: a@contoso.com\r\nTo: b@x.test\r\nSubject: s\r\n\r\n');
    const none = Buffer.from('From: a@contoso.com\r\nX-Bcc-Note: stays\r\n\r\n');
    assert.equal(withoutBcc(none), none, 'no Bcc: the same buffer');
    assert.deepEqual(
      headerFields(Buffer.from('From: a\nBcc: b\n c\n\n')).map((f) => f.name),
      ['from', 'bcc'],
    );
  });

  it('checks the sender fields against the device list', () => {
    const device = {
      name: 'scanner',
      user: 'scanner',
      passwordHash: HASH,
      account: 'default',
      allowedFrom: ['scanner@contoso.com', 'sales@contoso.com'],
      sourceRanges: [],
      maxMessageBytes: 1_000_000,
      maxRecipients: 10,
    };
    const check = (header: string) => checkSenderHeaders(message(header), device)?.message;
    assert.equal(check('From: Scanner <SCANNER@contoso.com>'), undefined);
    assert.equal(check('From: scanner@contoso.com, sales@contoso.com\r\nSender: scanner@contoso.com'), undefined);
    assert.match(check('From: scanner@contoso.com, boss@contoso.com') ?? '', /^5\.7\.1 From <boss@contoso\.com> is not allowed/);
    assert.match(
      check('From: scanner@contoso.com\r\nFrom: sales@contoso.com') ?? '',
      /^5\.6\.0 The message has 2 From header fields/,
    );
    assert.match(check('From: undisclosed-recipients:;') ?? '', /^5\.6\.0 The message has no From address/);
  });
});

describe('relay storage target', () => {
  const urls = {
    blobServiceUrl: 'https://stoutbox.blob.core.windows.net',
    queueServiceUrl: 'https://stoutbox.queue.core.windows.net',
  };

  it('writes to mail-mime and mail-outbox, and describes the account without a key or SAS', () => {
    const local = createStorageTarget({ connectionString: 'UseDevelopmentStorage=true' });
    assert.equal(local.container.containerName, 'mail-mime');
    assert.equal(local.queue.name, 'mail-outbox');
    assert.equal(local.describe, 'account devstoreaccount1 (connection string)');
    assert.equal(local.credential, undefined);
    assert.equal(local.senders.containerName, 'relay-senders');
    assert.equal(local.activity.containerName, 'relay-activity');
    const managed = createStorageTarget({
      ...urls,
      credential: { type: 'managedIdentity', clientId: '11111111-1111-1111-1111-111111111111' },
    });
    assert.equal(managed.describe, 'stoutbox.blob.core.windows.net (managedIdentity)');
    assert.ok(managed.credential, 'an identity to check at start');
  });

  it('names the credential setting that is wrong', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'relay-credential-'));
    try {
      const certificateOnly = path.join(dir, 'cert-only.pem');
      await writeFile(certificateOnly, '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n');
      const certificate = (certificateFile: string) =>
        createStorageTarget({
          ...urls,
          credential: { type: 'clientCertificate', tenantId: 't', clientId: 'c', certificateFile },
        });
      assert.throws(
        () => certificate(path.join(dir, 'missing.pem')),
        /^ConfigError: storage\.credential\.certificateFile: cannot read it/,
      );
      assert.throws(
        () => certificate(certificateOnly),
        /storage\.credential\.certificateFile: must be a PEM file with the private key and the certificate/,
      );
      const saved = { ...process.env };
      for (const name of ['AZURE_CLIENT_ID', 'AZURE_TENANT_ID', 'AZURE_FEDERATED_TOKEN_FILE']) delete process.env[name];
      try {
        assert.throws(
          () => createStorageTarget({ ...urls, credential: { type: 'workloadIdentity' } }),
          /storage\.credential: workload identity is not set up/,
        );
      } finally {
        Object.assign(process.env, saved);
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
