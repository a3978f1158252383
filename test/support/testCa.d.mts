/** A test certificate authority: its certificate and private key, PEM encoded. */
export interface TestCa {
  caPem: string;
  caKeyPem: string;
}

/** A server key pair signed by a TestCa, PEM encoded; pass as `{ key, cert }` to tls/https servers. */
export interface ServerCert {
  key: string;
  cert: string;
}

export interface TestCaPaths {
  dir: string;
  /** Trust anchor: point NODE_EXTRA_CA_CERTS (or a client's `ca` option) here. */
  caPath: string;
  caKeyPath: string;
  serverKeyPath: string;
  serverCertPath: string;
}

export interface TestTls {
  /** The CA certificate clients must trust. */
  caPem: string;
  /** Server key and certificate (valid for 127.0.0.1, localhost and ::1). */
  key: string;
  cert: string;
  paths: TestCaPaths;
}

export declare const DEFAULT_TEST_CA_DIR: string;
export declare const DEFAULT_SERVER_HOSTS: readonly string[];
export declare const TEST_CA_FILES: Readonly<{ ca: string; caKey: string; serverKey: string; serverCert: string }>;

/** Creates a new CA (EC P-256, valid 10 years). Nothing is written to disk. */
export declare function createTestCa(options?: { commonName?: string }): Promise<TestCa>;

/** Issues a server certificate for the given names and IP addresses (default: 127.0.0.1, localhost, ::1). */
export declare function issueServerCert(ca: TestCa, hosts?: readonly string[]): Promise<ServerCert>;

/** The file paths ensureTestCaFiles uses in dir, without touching the disk. */
export declare function testCaPaths(dir?: string): TestCaPaths;

/**
 * Makes sure dir holds ca.pem, ca-key.pem, server-key.pem and server-cert.pem that belong together and are
 * not about to expire; creates them otherwise. Idempotent and safe to call from concurrent processes.
 */
export declare function ensureTestCaFiles(dir?: string): Promise<TestCaPaths>;

/** ensureTestCaFiles, then reads the CA certificate and the server key pair. */
export declare function loadTestTls(dir?: string): Promise<TestTls>;
