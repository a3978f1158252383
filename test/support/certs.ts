/**
 * Certificates for local TLS test servers (Key Vault double, SMTP servers, ...).
 *
 * `npm test` runs test/support/runTests.mjs, which calls ensureTestCaFiles() on DEFAULT_TEST_CA_DIR and starts
 * the test runner with NODE_EXTRA_CA_CERTS pointing at its ca.pem, so every client in the test process
 * trusts servers started with loadTestTls():
 *
 *   const { key, cert, caPem } = await loadTestTls();
 *   https.createServer({ key, cert }, handler).listen(0, '127.0.0.1');
 *
 * When a test file runs on its own (`node --import tsx --test test/x.test.ts`), NODE_EXTRA_CA_CERTS is not
 * set: pass `caPem` to the client explicitly (`ca: caPem` for tls/nodemailer, `tlsOptions: { ca: caPem }`
 * for Azure SDK clients).
 *
 * createTestCa() and issueServerCert() make throw-away certificates in memory, e.g. for a test that needs a
 * certificate the client does not trust, or one for other host names.
 */
export {
  DEFAULT_SERVER_HOSTS,
  DEFAULT_TEST_CA_DIR,
  TEST_CA_FILES,
  createTestCa,
  ensureTestCaFiles,
  issueServerCert,
  loadTestTls,
  testCaPaths,
} from './testCa.mjs';
export type { ServerCert, TestCa, TestCaPaths, TestTls } from './testCa.mjs';
