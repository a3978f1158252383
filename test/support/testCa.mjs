// Test certificate authority shared by the test launcher (plain JS, runs before tsx) and by the
// TypeScript test helpers (re-exported with types from ./certs.ts). Types: ./testCa.d.mts.
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rename, rm, rmdir, writeFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import selfsigned from 'selfsigned';

/** Where `npm test` keeps the CA files: `<repo>/.local/test-ca` (git-ignored). */
export const DEFAULT_TEST_CA_DIR = fileURLToPath(new URL('../../.local/test-ca', import.meta.url));

/** Names a local test server can be reached by. */
export const DEFAULT_SERVER_HOSTS = Object.freeze(['127.0.0.1', 'localhost', '::1']);

export const TEST_CA_FILES = Object.freeze({
  ca: 'ca.pem',
  caKey: 'ca-key.pem',
  serverKey: 'server-key.pem',
  serverCert: 'server-cert.pem',
});

const DAY_MS = 24 * 60 * 60 * 1000;
const CA_VALID_DAYS = 3650;
const SERVER_VALID_DAYS = 825;
// Files whose certificates expire sooner than this are replaced.
const RENEW_BEFORE_MS = 7 * DAY_MS;
// selfsigned signs with the CA key using the leaf's key type, so CA and leaves must share it.
const KEY_OPTIONS = { keyType: 'ec', curve: 'P-256', algorithm: 'sha256' };

function validity(days) {
  const notBeforeDate = new Date(Date.now() - DAY_MS); // tolerate clock skew
  return { notBeforeDate, notAfterDate: new Date(notBeforeDate.getTime() + days * DAY_MS) };
}

export async function createTestCa(options = {}) {
  const commonName = options.commonName ?? 'oauth-outbox test CA';
  const pems = await selfsigned.generate([{ name: 'commonName', value: commonName }], {
    ...KEY_OPTIONS,
    ...validity(CA_VALID_DAYS),
    extensions: [
      { name: 'basicConstraints', cA: true, pathLenConstraint: 0, critical: true },
      { name: 'keyUsage', keyCertSign: true, cRLSign: true, digitalSignature: true, critical: true },
    ],
  });
  return { caPem: pems.cert, caKeyPem: pems.private };
}

export async function issueServerCert(ca, hosts = DEFAULT_SERVER_HOSTS) {
  if (hosts.length === 0) throw new Error('issueServerCert needs at least one host name or IP address');
  const commonName = hosts.find((host) => isIP(host) === 0) ?? hosts[0];
  const pems = await selfsigned.generate([{ name: 'commonName', value: commonName }], {
    ...KEY_OPTIONS,
    ...validity(SERVER_VALID_DAYS),
    ca: { key: ca.caKeyPem, cert: ca.caPem },
    extensions: [
      { name: 'basicConstraints', cA: false, critical: true },
      { name: 'keyUsage', digitalSignature: true, critical: true },
      { name: 'extKeyUsage', serverAuth: true },
      {
        name: 'subjectAltName',
        altNames: hosts.map((host) => (isIP(host) === 0 ? { type: 2, value: host } : { type: 7, ip: host })),
      },
    ],
  });
  return { key: pems.private, cert: pems.cert };
}

export function testCaPaths(dir = DEFAULT_TEST_CA_DIR) {
  return {
    dir,
    caPath: join(dir, TEST_CA_FILES.ca),
    caKeyPath: join(dir, TEST_CA_FILES.caKey),
    serverKeyPath: join(dir, TEST_CA_FILES.serverKey),
    serverCertPath: join(dir, TEST_CA_FILES.serverCert),
  };
}

export async function ensureTestCaFiles(dir = DEFAULT_TEST_CA_DIR) {
  const paths = testCaPaths(dir);
  if (await filesAreUsable(paths)) return paths;

  // Generate into a sibling temporary directory and rename it into place, so that concurrent
  // callers never see (or produce) a CA and a server certificate that do not belong together.
  await mkdir(dirname(dir), { recursive: true });
  const staging = await mkdtemp(`${dir.replace(/[\\/]+$/, '')}.tmp-`);
  try {
    const ca = await createTestCa();
    const server = await issueServerCert(ca);
    const staged = testCaPaths(staging);
    await writeFile(staged.caPath, ca.caPem);
    await writeFile(staged.caKeyPath, ca.caKeyPem, { mode: 0o600 });
    await writeFile(staged.serverKeyPath, server.key, { mode: 0o600 });
    await writeFile(staged.serverCertPath, server.cert);
    for (let attempt = 0; attempt < 10; attempt++) {
      // Another caller may have finished meanwhile: keep its files rather than replace them.
      if (await filesAreUsable(paths)) return paths;
      if (!(await removeStaleFiles(paths))) {
        // The directory also holds unrelated files: move ours in one by one.
        for (const key of ['caPath', 'caKeyPath', 'serverKeyPath', 'serverCertPath']) {
          await rename(staged[key], paths[key]);
        }
        return paths;
      }
      try {
        await rename(staging, dir);
        return paths;
      } catch (error) {
        if (error?.code !== 'ENOTEMPTY' && error?.code !== 'EEXIST') throw error;
      }
    }
    throw new Error(`Could not create the test CA files in ${dir}: other processes keep replacing them.`);
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
}

export async function loadTestTls(dir = DEFAULT_TEST_CA_DIR) {
  const paths = await ensureTestCaFiles(dir);
  const [caPem, key, cert] = await Promise.all([
    readFile(paths.caPath, 'utf8'),
    readFile(paths.serverKeyPath, 'utf8'),
    readFile(paths.serverCertPath, 'utf8'),
  ]);
  return { caPem, key, cert, paths };
}

/** Removes our files and, if it is then empty, the directory; true when the directory is gone. */
async function removeStaleFiles(paths) {
  for (const file of [paths.caPath, paths.caKeyPath, paths.serverKeyPath, paths.serverCertPath]) {
    await rm(file, { force: true });
  }
  try {
    await rmdir(paths.dir);
    return true;
  } catch (error) {
    if (error?.code === 'ENOENT') return true;
    if (error?.code === 'ENOTEMPTY' || error?.code === 'EEXIST') return false;
    throw error;
  }
}

async function filesAreUsable(paths) {
  try {
    const [caPem, caKeyPem, serverKeyPem, serverCertPem] = await Promise.all(
      [paths.caPath, paths.caKeyPath, paths.serverKeyPath, paths.serverCertPath].map((file) => readFile(file, 'utf8')),
    );
    const ca = new X509Certificate(caPem);
    const server = new X509Certificate(serverCertPem);
    const renewAfter = Date.now() + RENEW_BEFORE_MS;
    return (
      ca.ca &&
      ca.checkPrivateKey(createPrivateKey(caKeyPem)) &&
      server.checkPrivateKey(createPrivateKey(serverKeyPem)) &&
      server.checkIssued(ca) &&
      server.verify(ca.publicKey) &&
      Date.parse(ca.validTo) > renewAfter &&
      Date.parse(server.validTo) > renewAfter &&
      DEFAULT_SERVER_HOSTS.every((host) =>
        isIP(host) === 0 ? server.checkHost(host) !== undefined : server.checkIP(host) !== undefined,
      )
    );
  } catch {
    return false;
  }
}
