/**
 * Who may send through the relay: devices with a password (after TLS, from their networks if they have
 * some), devices known only by their address, the plain port's networks, and what happens to an address
 * that keeps guessing. Loopback has many addresses (127.0.0.2, .3, ...): each stands for another client.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { startAzurite, type Azurite } from '../local/peers/azurite';
import { startLocalRelay } from '../relay/localRelay';
import { createTestCa, ensureTestCaFiles, issueServerCert } from './support/certs';
import { composeMime, deviceTransport, queuedId, sendMime, SmtpDialogue } from './support/relayDevice';
import { relayStorage, startTestRelay, type TestRelay } from './support/relayHarness';

const PASSWORD = 'a long device password';
const ENVELOPE = { from: 'scanner@contoso.test', to: ['alice@fabrikam.test'] };

let azurite: Azurite;
let storage: ReturnType<typeof relayStorage>;
const relays: TestRelay[] = [];

before(async () => {
  azurite = await startAzurite();
  storage = relayStorage(azurite.connectionString);
});
after(async () => {
  await Promise.all(relays.map((r) => r.close()));
  await azurite?.stop();
});

async function relayWith(...args: Parameters<typeof startTestRelay> extends [string, ...infer R] ? R : never) {
  const relay = await startTestRelay(azurite.connectionString, ...args);
  relays.push(relay);
  return relay;
}

const message = () => composeMime({ from: 'scanner@contoso.test', to: 'alice@fabrikam.test', subject: 'Scan', text: 'scan' });

async function waitFor(condition: () => boolean, timeoutMs = 5_000) {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('timed out waiting');
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

type SmtpError = Error & { responseCode?: number; response?: string };

describe('relay: login', () => {
  let relay: TestRelay;
  before(async () => {
    relay = await relayWith(
      [
        { user: 'scanner', password: PASSWORD, account: 'demo', allowedFrom: ['scanner@contoso.test'] },
        {
          user: 'fenced',
          password: PASSWORD,
          account: 'demo',
          allowedFrom: ['scanner@contoso.test'],
          sourceRanges: ['127.0.0.20/32'],
        },
      ],
      { loginFailures: { maxFailures: 3, windowSeconds: 60, blockSeconds: 60, delayStepMs: 400, maxDelayMs: 2_000 } },
    );
  });

  const login = async (user: string, pass: string, localAddress: string) => {
    const smtp = await SmtpDialogue.connect({ port: relay.port, localAddress });
    try {
      const started = performance.now();
      const reply = await smtp.openAndLogin(user, pass);
      return { ...reply, ms: performance.now() - started };
    } finally {
      smtp.end();
    }
  };

  it('accepts the right password with AUTH PLAIN and AUTH LOGIN', async () => {
    for (const method of ['PLAIN', 'LOGIN'] as const) {
      const transport = await deviceTransport({ port: relay.port, user: 'scanner', pass: PASSWORD, authMethod: method });
      const info = await sendMime(transport, await message(), ENVELOPE);
      transport.close();
      assert.ok(await storage.message(queuedId(info.response)), `queued after AUTH ${method}`);
    }
    await waitFor(() => relay.logs.filter((l) => l.includes('"relay.session"')).length >= 2);
    const methods = relay.logs.filter((l) => l.includes('"relay.session"')).map((l) => (JSON.parse(l) as { auth?: string }).auth);
    assert.deepEqual(methods, ['PLAIN', 'LOGIN']);
  });

  it('refuses a wrong password, an unknown user and a right password from outside the device network alike (535)', async () => {
    for (const [user, pass, from] of [
      ['scanner', 'wrong', '127.0.0.11'],
      ['nobody', PASSWORD, '127.0.0.12'],
      ['fenced', PASSWORD, '127.0.0.13'],
    ] as const) {
      const reply = await login(user, pass, from);
      assert.equal(reply.code, 535, `${user} from ${from}`);
      assert.match(reply.text, /^535 5\.7\.8 Authentication failed/);
    }
    assert.equal((await login('fenced', PASSWORD, '127.0.0.20')).code, 235, 'the fenced device from its own address');
  });

  it('answers repeated failures from one address more and more slowly, then refuses that address for a while (454)', async () => {
    const attacker = '127.0.0.30';
    const first = await login('scanner', 'guess-1', attacker);
    const second = await login('scanner', 'guess-2', attacker);
    assert.equal(first.code, 535);
    assert.equal(second.code, 535);
    // The cause of the slower answers: the delay the relay chose for each failure from this address.
    const delays = () =>
      relay.logs
        .filter((l) => l.includes('"relay.login_failed"') && l.includes(`"remote":"${attacker}"`))
        .map((l) => (JSON.parse(l) as { delayMs: number }).delayMs);
    assert.equal(delays().length, 2);
    assert.ok(delays()[0]! > 0, 'the first failure is answered late');
    assert.ok(delays()[1]! > delays()[0]!, `the second later still: ${delays().join(', ')} ms`);
    assert.equal((await login('scanner', 'guess-3', attacker)).code, 535, 'the third failure blocks the address');

    const blocked = await login('scanner', PASSWORD, attacker);
    assert.equal(blocked.code, 454, 'even the right password is refused while the address is blocked');
    assert.match(blocked.text, /^454 4\.7\.0 Too many failed logins from this address; try again in 1 minute/);
    assert.equal(delays().length, 3, 'the blocked try was refused without checking the password');
    assert.equal((await login('scanner', PASSWORD, '127.0.0.31')).code, 235, 'another address is not affected');
    const warning = relay.logs.find((l) => l.includes('"relay.login_blocked"'));
    assert.ok(warning?.includes(attacker), 'the block is logged with the address');
  });
});

describe('relay: devices known by their address', () => {
  let relay: TestRelay;
  before(async () => {
    relay = await relayWith(
      [
        { name: 'erp', account: 'demo', allowedFrom: ['scanner@contoso.test'], sourceRanges: ['127.0.0.40/31'] },
        { user: 'scanner', password: PASSWORD, account: 'demo', allowedFrom: ['scanner@contoso.test'] },
      ],
      {
        listeners: {
          starttls: { host: '127.0.0.1', port: 0 },
          plain: { host: '127.0.0.1', port: 0, allowFrom: ['127.0.0.40/29'] },
        },
      },
    );
  });

  it('takes mail without a login only from the device network', async () => {
    const info = await sendMime(
      await deviceTransport({ port: relay.port, localAddress: '127.0.0.41' }),
      await message(),
      ENVELOPE,
    );
    const queued = await storage.message(queuedId(info.response));
    assert.equal(queued?.account, 'demo');
    await assert.rejects(
      sendMime(await deviceTransport({ port: relay.port, localAddress: '127.0.0.42' }), await message(), ENVELOPE),
      (error: SmtpError) => error.responseCode === 530,
    );
  });

  it('the plain port takes mail without TLS from its networks, and greets others with 554', async () => {
    const info = await sendMime(
      await deviceTransport({ port: relay.plainPort!, plain: true, localAddress: '127.0.0.40' }),
      await message(),
      ENVELOPE,
    );
    assert.ok(await storage.message(queuedId(info.response)));

    const outsider = await SmtpDialogue.connect({ port: relay.plainPort!, localAddress: '127.0.0.50' });
    assert.equal(outsider.greeting.code, 554);
    assert.match(outsider.greeting.text, /^554 5\.7\.1 This port accepts connections only from configured networks/);
    await new Promise<void>((resolve) => outsider.onClose(resolve));
  });

  it('on the plain port a password still needs STARTTLS first (AUTH is no command before it)', async () => {
    const smtp = await SmtpDialogue.connect({ port: relay.plainPort!, localAddress: '127.0.0.43' });
    try {
      assert.doesNotMatch((await smtp.command('EHLO device.test')).text, /AUTH/);
      assert.equal((await smtp.login('scanner', PASSWORD)).code, 500);
      await smtp.startTls();
      await smtp.command('EHLO device.test');
      assert.equal((await smtp.login('scanner', PASSWORD)).code, 235);
    } finally {
      smtp.end();
    }
  });
});

describe('relay in the local stack', () => {
  it('takes the one-line curl send of docs/local.md as scanner / scanner for the demo account', async (t) => {
    const ca = await ensureTestCaFiles();
    const relay = await startLocalRelay({
      host: '127.0.0.1',
      port: 0,
      connectionString: azurite.connectionString,
      certFile: ca.serverCertPath,
      keyFile: ca.serverKeyPath,
      account: 'demo',
      from: 'demo@example.com',
      log: { info: () => {}, warn: () => {}, error: () => {} },
    });
    try {
      assert.match(
        relay.bannerLine,
        /SMTP relay +127\.0\.0\.1:\d+ STARTTLS\n +user name scanner, password scanner: sends for "demo" as demo@example\.com/,
      );
      const curl = await promisify(execFile)('curl', ['--version']).catch(() => undefined);
      if (!curl) return t.skip('curl is not installed');
      // docs/local.md, with this run's port and CA path.
      const command = `printf 'From: demo@example.com\\r\\nTo: someone@example.com\\r\\nSubject: Hello from the relay\\r\\n\\r\\nScanned.\\r\\n' | curl -sS smtp://127.0.0.1:${relay.port} --ssl-reqd --cacert ${ca.caPath} --user scanner:scanner --mail-from demo@example.com --mail-rcpt someone@example.com -T - -v`;
      const { stderr } = await promisify(execFile)('sh', ['-c', command]);
      const id = queuedId(/^< (250 2\.0\.0 queued as \S+)/m.exec(stderr)?.[1] ?? stderr);
      const queued = await storage.message(id);
      assert.equal(queued?.account, 'demo');
      assert.deepEqual(queued?.mime.envelope, { from: 'demo@example.com', to: ['someone@example.com'] });
      assert.match(
        (await storage.blob(queued.mime.blob)).body.toString(),
        /^From: demo@example\.com\r\nTo: someone@example\.com\r\nSubject: Hello from the relay\r\n\r\nScanned\.\r\n$/,
      );
    } finally {
      await relay.close();
    }
  });
});

describe('relay: certificate renewal', () => {
  /** The certificate the relay presents: implicit TLS with or without SNI, or STARTTLS. */
  async function presented(port: number, how: 'tls' | 'tls-sni' | 'starttls'): Promise<string> {
    const handshake = (options: tls.ConnectionOptions) =>
      new Promise<string>((resolve, reject) => {
        const socket = tls.connect({ rejectUnauthorized: false, ...options }, () => {
          resolve(socket.getPeerX509Certificate()!.fingerprint256);
          socket.destroy();
        });
        socket.once('error', reject);
      });
    if (how !== 'starttls')
      return handshake({ host: '127.0.0.1', port, ...(how === 'tls-sni' ? { servername: 'localhost' } : {}) });
    const plain = net.connect({ host: '127.0.0.1', port });
    const lines = async function* () {
      let buffer = '';
      for await (const chunk of plain) {
        buffer += String(chunk);
        while (/^\d{3} .*\r\n/m.test(buffer)) {
          const match = /^\d{3} .*\r\n/m.exec(buffer)!;
          yield buffer.slice(0, match.index + match[0].length);
          buffer = buffer.slice(match.index + match[0].length);
        }
      }
    };
    const replies = lines();
    await replies.next();
    plain.write('EHLO renewal.test\r\n');
    await replies.next();
    plain.write('STARTTLS\r\n');
    await replies.next();
    plain.pause();
    return handshake({ socket: plain });
  }

  it('SIGHUP (reloadTls) makes new handshakes use the renewed certificate, on every port, with or without SNI', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'relay-renewal-'));
    try {
      const ca = await createTestCa();
      const [before, after] = [await issueServerCert(ca), await issueServerCert(ca)];
      const files = { certFile: path.join(dir, 'cert.pem'), keyFile: path.join(dir, 'key.pem') };
      await writeFile(files.certFile, before.cert);
      await writeFile(files.keyFile, before.key);
      const relay = await relayWith(
        [{ user: 'scanner', password: PASSWORD, account: 'demo', allowedFrom: ['scanner@contoso.test'] }],
        {
          tls: files,
        },
      );
      const fingerprint = (pem: string) => new X509Certificate(pem).fingerprint256;
      for (const how of ['tls', 'tls-sni'] as const)
        assert.equal(await presented(relay.tlsPort!, how), fingerprint(before.cert), how);
      assert.equal(await presented(relay.port, 'starttls'), fingerprint(before.cert));

      await writeFile(files.certFile, after.cert);
      await writeFile(files.keyFile, after.key);
      await relay.relay.reloadTls();
      for (const how of ['tls', 'tls-sni'] as const)
        assert.equal(await presented(relay.tlsPort!, how), fingerprint(after.cert), how);
      assert.equal(await presented(relay.port, 'starttls'), fingerprint(after.cert));

      await writeFile(files.keyFile, before.key); // a half-written renewal: key and certificate do not match
      await assert.rejects(relay.relay.reloadTls(), /key values mismatch|private key|does not match|certificate/i);
      assert.equal(await presented(relay.tlsPort!, 'tls'), fingerprint(after.cert), 'the good pair stays in use');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
