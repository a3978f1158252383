/**
 * An HTTPS stand-in for the Key Vault secrets REST API, good enough for the real SecretClient:
 * the bearer challenge, set/get (latest or a version), list, versions, delete, get/purge deleted, and the
 * service's throttling: per 10 seconds, 300 create-class operations (each set) and 4,000 others, beyond which it
 * answers 429 `Throttled` with Retry-After (in seconds), as Key Vault does; a refused request does not count.
 *
 *   const vault = await startKeyVaultDouble();
 *   const store = new KeyVaultSecretStore(vault.url, new FakeTokenCredential(), {
 *     disableChallengeResourceVerification: true,
 *     clientOptions: { tlsOptions: { ca: vault.caPem }, retryOptions: { maxRetries: 0 } },
 *   });
 *   ...
 *   await vault.stop();
 */
import { randomBytes, randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { AccessToken, GetTokenOptions, TokenCredential } from '@azure/identity';
import { SECRET_NAME_PATTERN, SECRET_VALUE_MAX_BYTES } from '../../shared/storage/secretStore';
import { loadTestTls } from './certs';

export const FAKE_KEY_VAULT_TOKEN = 'fake-key-vault-access-token';
export const FAKE_TENANT_ID = '00000000-0000-4000-8000-00000000a11c';
export const KEY_VAULT_SCOPE = 'https://vault.azure.net/.default';

/** Hands out a fixed token and remembers what it was asked for. */
export class FakeTokenCredential implements TokenCredential {
  readonly calls: Array<{ scopes: string[]; tenantId: string | undefined }> = [];

  constructor(private readonly token: string = FAKE_KEY_VAULT_TOKEN) {}

  async getToken(scopes: string | string[], options?: GetTokenOptions): Promise<AccessToken> {
    this.calls.push({ scopes: [scopes].flat(), tenantId: options?.tenantId });
    return { token: this.token, expiresOnTimestamp: Date.now() + 60 * 60 * 1000 };
  }
}

export type KeyVaultOperation =
  | 'challenge'
  | 'getSecret'
  | 'setSecret'
  | 'listSecrets'
  | 'listVersions'
  | 'deleteSecret'
  | 'getDeletedSecret'
  | 'purgeDeletedSecret'
  | 'unknown';

export interface KeyVaultRequestRecord {
  method: string;
  /** Path without the query string. */
  path: string;
  operation: KeyVaultOperation;
  /** True when the request carried the expected bearer token. */
  authenticated: boolean;
  /** 0 when the connection was dropped. */
  status: number;
}

/** 'unavailable' answers 503 ServiceUnavailable; 'drop' destroys the connection without an answer. */
export type KeyVaultOutage = 'unavailable' | 'drop';

/** Key Vault's limits per vault and region (secrets, software-protected): per 10 s, 300 creates and 4,000 others. */
export interface KeyVaultLimits {
  /** setSecret (each creates a version) per window. */
  creates: number;
  /** Every other authenticated operation per window. */
  others: number;
  windowMs: number;
}

export const KEY_VAULT_LIMITS: KeyVaultLimits = { creates: 300, others: 4000, windowMs: 10_000 };

export interface KeyVaultDoubleOptions {
  /** Default KEY_VAULT_LIMITS; false for none. Tests shrink them to reach throttling with a few requests. */
  limits?: KeyVaultLimits | false;
  /** The bearer token to accept (default FAKE_KEY_VAULT_TOKEN). */
  token?: string;
  /** Tenant named in the challenge (default FAKE_TENANT_ID). */
  tenantId?: string;
  /** Server key pair and the CA that signed it (default: loadTestTls(), the shared test CA). */
  tls?: { key: string; cert: string; caPem: string };
}

export interface SecretSnapshot {
  value: string;
  version: string;
  enabled: boolean;
  contentType?: string;
  tags?: Record<string, string>;
}

interface StoredVersion extends SecretSnapshot {
  created: number;
  updated: number;
  nbf?: number;
  exp?: number;
}

interface StoredSecret {
  /** Spelling from the first write; names are case-insensitive, as in Key Vault. */
  name: string;
  versions: StoredVersion[];
  deletedDate?: number;
}

const RECOVERY_LEVEL = 'Recoverable+Purgeable';
const RECOVERABLE_DAYS = 90;
const MAX_BODY_BYTES = 1024 * 1024;

class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly innerCode?: string,
  ) {
    super(message);
  }
}

export class KeyVaultDouble {
  private readonly secrets = new Map<string, StoredSecret>();
  private readonly log: KeyVaultRequestRecord[] = [];
  private outage: KeyVaultOutage | undefined;
  private counts = { reads: 0, writes: 0, challenges: 0, throttled: 0 };
  /** Start times of the requests that counted, per class, within the current window. */
  private readonly recent = { creates: [] as number[], others: [] as number[] };
  /** The limits in force; change them at any time. */
  limits: KeyVaultLimits | false = KEY_VAULT_LIMITS;
  readonly url: string;

  private constructor(
    private readonly server: Server,
    readonly caPem: string,
    readonly tenantId: string,
    private readonly token: string,
  ) {
    const { port } = server.address() as AddressInfo;
    this.url = `https://127.0.0.1:${port}`;
  }

  static async start(options: KeyVaultDoubleOptions = {}): Promise<KeyVaultDouble> {
    const tls = options.tls ?? (await loadTestTls());
    const server = createServer({ key: tls.key, cert: tls.cert });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => {
        server.off('error', reject);
        resolve();
      });
    });
    const double = new KeyVaultDouble(
      server,
      tls.caPem,
      options.tenantId ?? FAKE_TENANT_ID,
      options.token ?? FAKE_KEY_VAULT_TOKEN,
    );
    if (options.limits !== undefined) double.limits = options.limits;
    server.on('request', (req: IncomingMessage, res: ServerResponse) => {
      double.handle(req, res).catch((error: unknown) => {
        if (!res.headersSent) double.sendError(res, new HttpError(500, 'InternalServerError', String(error)));
        else res.destroy();
      });
    });
    return double;
  }

  /** Every request, oldest first. Values are never recorded. */
  get requests(): readonly KeyVaultRequestRecord[] {
    return this.log;
  }
  /** Authenticated get-secret requests (latest or a version), whatever their outcome. */
  get reads(): number {
    return this.counts.reads;
  }
  /** Authenticated set-secret requests, whatever their outcome; see versions() for what was stored. */
  get writes(): number {
    return this.counts.writes;
  }
  /** 401 answers with a WWW-Authenticate challenge. */
  get challenges(): number {
    return this.counts.challenges;
  }
  /** 429 answers: requests refused because the vault was over its limits. */
  get throttled(): number {
    return this.counts.throttled;
  }

  /** Version ids of a secret, oldest first ([] if it never existed). */
  versions(name: string): string[] {
    return this.secrets.get(name.toLowerCase())?.versions.map((v) => v.version) ?? [];
  }

  /** The latest version as stored, bypassing HTTP; undefined if missing or deleted. */
  secret(name: string): SecretSnapshot | undefined {
    const stored = this.secrets.get(name.toLowerCase());
    const latest = stored?.versions.at(-1);
    if (stored === undefined || latest === undefined || stored.deletedDate !== undefined) return undefined;
    const { value, version, enabled, contentType, tags } = latest;
    return { value, version, enabled, ...(contentType !== undefined && { contentType }), ...(tags !== undefined && { tags }) };
  }

  /** Stores a version without HTTP (no counters change). Returns the version id. */
  seed(
    name: string,
    value: string,
    options: { contentType?: string; tags?: Record<string, string>; enabled?: boolean } = {},
  ): string {
    return this.addVersion(name, value, options.enabled ?? true, options.contentType, options.tags).version;
  }

  /** Makes every stored version look `ms` older, as if that much time had passed since it was written. */
  age(ms: number): void {
    const seconds = Math.round(ms / 1000);
    for (const secret of this.secrets.values()) {
      for (const version of secret.versions) {
        version.created -= seconds;
        version.updated -= seconds;
      }
    }
  }

  /** Enables or disables the latest version, as the portal does. */
  setEnabled(name: string, enabled: boolean): void {
    const latest = this.secrets.get(name.toLowerCase())?.versions.at(-1);
    if (latest === undefined) throw new Error(`No secret named ${name}`);
    latest.enabled = enabled;
    latest.updated = nowSeconds();
  }

  /** Simulates an outage: true or 'unavailable' answers 503, 'drop' drops connections; false ends it. */
  setDown(down: boolean | KeyVaultOutage): void {
    this.outage = down === true ? 'unavailable' : down === false ? undefined : down;
  }

  async stop(): Promise<void> {
    const closed = new Promise<void>((resolve, reject) => this.server.close((error) => (error ? reject(error) : resolve())));
    this.server.closeAllConnections();
    await closed;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', this.url);
    const method = req.method ?? 'GET';
    const segments = url.pathname.replace(/\/+$/, '').split('/').slice(1).map(decodeURIComponent);
    const operation = routeOf(method, segments);
    const authenticated = req.headers.authorization === `Bearer ${this.token}`;
    const record: KeyVaultRequestRecord = { method, path: url.pathname, operation, authenticated, status: 0 };
    this.log.push(record);
    res.on('finish', () => (record.status = res.statusCode));

    if (this.outage === 'drop') {
      req.socket.destroy();
      return;
    }
    if (this.outage === 'unavailable') {
      req.resume();
      return this.sendError(res, new HttpError(503, 'ServiceUnavailable', 'The service is temporarily unavailable.'));
    }
    if (!authenticated) {
      req.resume();
      record.operation = 'challenge';
      this.counts.challenges++;
      const message = req.headers.authorization
        ? 'AKV10032: Invalid issuer or token.'
        : 'AKV10000: Request is missing a Bearer or PoP token.';
      return this.sendError(res, new HttpError(401, 'Unauthorized', message), {
        'www-authenticate': `Bearer authorization="https://login.microsoftonline.com/${this.tenantId}", resource="https://vault.azure.net"`,
      });
    }
    const retryAfter = this.throttle(operation === 'setSecret' ? 'creates' : 'others');
    if (retryAfter !== undefined) {
      req.resume();
      this.counts.throttled++;
      return this.sendError(
        res,
        new HttpError(
          429,
          'Throttled',
          'Request was not processed because too many requests were received. Reason: VaultRequestTypeLimitReached',
        ),
        { 'retry-after': String(retryAfter) },
      );
    }
    if (operation === 'getSecret') this.counts.reads++;
    if (operation === 'setSecret') this.counts.writes++;

    try {
      if (!url.searchParams.get('api-version')) {
        throw new HttpError(400, 'BadParameter', 'The api-version query parameter is required.');
      }
      const body = method === 'PUT' || method === 'PATCH' ? await readJson(req) : (req.resume(), undefined);
      const name = segments[1] ?? '';
      if (segments.length >= 2) assertName(name);
      switch (operation) {
        case 'setSecret':
          return this.sendJson(res, 200, this.setSecret(name, body));
        case 'getSecret':
          return this.sendJson(res, 200, this.getSecret(name, segments[2]));
        case 'listSecrets':
          return this.sendJson(res, 200, this.listSecrets());
        case 'listVersions':
          return this.sendJson(res, 200, this.listVersions(name));
        case 'deleteSecret':
          return this.sendJson(res, 200, this.deleteSecret(name));
        case 'getDeletedSecret':
          return this.sendJson(res, 200, this.deletedBundle(this.deleted(name)));
        case 'purgeDeletedSecret':
          this.secrets.delete(this.deleted(name).name.toLowerCase());
          res.writeHead(204).end();
          return;
        default:
          throw new HttpError(400, 'BadParameter', `No operation ${method} ${url.pathname}.`);
      }
    } catch (error) {
      if (error instanceof HttpError) return this.sendError(res, error);
      throw error;
    }
  }

  /** Counts the request against its class, or returns the seconds to wait when the class is at its limit. */
  private throttle(kind: 'creates' | 'others'): number | undefined {
    if (this.limits === false) return undefined;
    const now = Date.now();
    const recent = this.recent[kind];
    const windowStart = now - this.limits.windowMs;
    let expired = 0;
    while (expired < recent.length && recent[expired]! <= windowStart) expired++;
    recent.splice(0, expired);
    if (recent.length >= this.limits[kind]) {
      const oldest = recent[0] ?? now;
      return Math.max(1, Math.ceil((oldest + this.limits.windowMs - now) / 1000));
    }
    recent.push(now);
    return undefined;
  }

  private setSecret(name: string, body: unknown): object {
    if (typeof body !== 'object' || body === null) throw new HttpError(400, 'BadParameter', 'The request body is required.');
    const { value, contentType, tags, attributes } = body as Record<string, unknown>;
    if (typeof value !== 'string') throw new HttpError(400, 'BadParameter', 'Property value is required.');
    if (Buffer.byteLength(value, 'utf8') > SECRET_VALUE_MAX_BYTES) {
      throw new HttpError(
        400,
        'BadParameter',
        `Secret is beyond the maximum permitted length of ${SECRET_VALUE_MAX_BYTES} bytes.`,
      );
    }
    if (contentType !== undefined && (typeof contentType !== 'string' || contentType.length > 255)) {
      throw new HttpError(400, 'BadParameter', 'Property contentType has invalid value.');
    }
    if (tags !== undefined && !isTags(tags)) throw new HttpError(400, 'BadParameter', 'Property tags has invalid value.');
    const existing = this.secrets.get(name.toLowerCase());
    if (existing?.deletedDate !== undefined) {
      throw new HttpError(
        409,
        'Conflict',
        `Secret ${name} is currently in a deleted but recoverable state, and its name cannot be reused; in this state, the secret can only be recovered or purged.`,
        'ObjectIsDeletedButRecoverable',
      );
    }
    const attrs = (typeof attributes === 'object' && attributes !== null ? attributes : {}) as Record<string, unknown>;
    const stored = this.addVersion(name, value, attrs.enabled !== false, contentType, tags);
    if (typeof attrs.nbf === 'number') stored.nbf = attrs.nbf;
    if (typeof attrs.exp === 'number') stored.exp = attrs.exp;
    return this.bundle(this.secrets.get(name.toLowerCase())!, stored, true);
  }

  private getSecret(name: string, version: string | undefined): object {
    const secret = this.secrets.get(name.toLowerCase());
    const found =
      secret === undefined || secret.deletedDate !== undefined
        ? undefined
        : version === undefined
          ? secret.versions.at(-1)
          : secret.versions.find((v) => v.version === version.toLowerCase());
    if (secret === undefined || found === undefined) {
      throw new HttpError(
        404,
        'SecretNotFound',
        `A secret with (name/id) ${version === undefined ? name : `${name}/${version}`} was not found in this key vault. If you recently deleted this secret you may be able to recover it using the correct recovery command. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182`,
      );
    }
    if (!found.enabled) {
      throw new HttpError(403, 'Forbidden', 'Operation get is not allowed on a disabled secret.', 'SecretDisabled');
    }
    return this.bundle(secret, found, true);
  }

  private listSecrets(): object {
    const value = [...this.secrets.values()]
      .filter((secret) => secret.deletedDate === undefined)
      .map((secret) => {
        const latest = secret.versions.at(-1)!;
        return { ...this.item(latest), id: `${this.url}/secrets/${secret.name}` };
      });
    return { value, nextLink: null };
  }

  private listVersions(name: string): object {
    const secret = this.secrets.get(name.toLowerCase());
    const versions = secret === undefined || secret.deletedDate !== undefined ? [] : secret.versions;
    return {
      value: versions.map((v) => ({ ...this.item(v), id: `${this.url}/secrets/${secret!.name}/${v.version}` })),
      nextLink: null,
    };
  }

  private deleteSecret(name: string): object {
    const secret = this.secrets.get(name.toLowerCase());
    if (secret === undefined || secret.deletedDate !== undefined) {
      throw new HttpError(404, 'SecretNotFound', `A secret with (name/id) ${name} was not found in this key vault.`);
    }
    secret.deletedDate = nowSeconds();
    return this.deletedBundle(secret);
  }

  private deleted(name: string): StoredSecret {
    const secret = this.secrets.get(name.toLowerCase());
    if (secret?.deletedDate === undefined) {
      throw new HttpError(404, 'SecretNotFound', `Deleted Secret not found: ${name}`);
    }
    return secret;
  }

  private deletedBundle(secret: StoredSecret): object {
    const deletedDate = secret.deletedDate ?? nowSeconds();
    const { value: _value, ...bundle } = this.bundle(secret, secret.versions.at(-1)!, false) as Record<string, unknown>;
    return {
      ...bundle,
      recoveryId: `${this.url}/deletedsecrets/${secret.name}`,
      deletedDate,
      scheduledPurgeDate: deletedDate + RECOVERABLE_DAYS * 24 * 60 * 60,
    };
  }

  private addVersion(
    name: string,
    value: string,
    enabled: boolean,
    contentType: string | undefined,
    tags: Record<string, string> | undefined,
  ): StoredVersion {
    const key = name.toLowerCase();
    const secret = this.secrets.get(key) ?? { name, versions: [] };
    this.secrets.set(key, secret);
    const now = nowSeconds();
    const stored: StoredVersion = {
      value,
      version: randomBytes(16).toString('hex'),
      enabled,
      created: now,
      updated: now,
      ...(contentType !== undefined && { contentType }),
      ...(tags !== undefined && { tags: { ...tags } }),
    };
    secret.versions.push(stored);
    return stored;
  }

  private attributes(v: StoredVersion): object {
    return {
      enabled: v.enabled,
      ...(v.nbf !== undefined && { nbf: v.nbf }),
      ...(v.exp !== undefined && { exp: v.exp }),
      created: v.created,
      updated: v.updated,
      recoveryLevel: RECOVERY_LEVEL,
      recoverableDays: RECOVERABLE_DAYS,
    };
  }

  private item(v: StoredVersion): object {
    return {
      attributes: this.attributes(v),
      ...(v.contentType !== undefined && { contentType: v.contentType }),
      ...(v.tags !== undefined && { tags: v.tags }),
    };
  }

  private bundle(secret: StoredSecret, v: StoredVersion, withValue: boolean): object {
    return {
      ...(withValue && { value: v.value }),
      id: `${this.url}/secrets/${secret.name}/${v.version}`,
      ...this.item(v),
    };
  }

  private sendJson(res: ServerResponse, status: number, body: object, headers: Record<string, string> = {}): void {
    const text = JSON.stringify(body);
    res.writeHead(status, {
      'content-type': 'application/json; charset=utf-8',
      'content-length': Buffer.byteLength(text),
      'cache-control': 'no-cache',
      'x-ms-request-id': randomUUID(),
      'x-ms-keyvault-service-version': '1.9.0.0',
      ...headers,
    });
    res.end(text);
  }

  private sendError(res: ServerResponse, error: HttpError, headers: Record<string, string> = {}): void {
    const inner = error.innerCode === undefined ? {} : { innererror: { code: error.innerCode } };
    this.sendJson(res, error.status, { error: { code: error.code, message: error.message, ...inner } }, headers);
  }
}

export function startKeyVaultDouble(options?: KeyVaultDoubleOptions): Promise<KeyVaultDouble> {
  return KeyVaultDouble.start(options);
}

function routeOf(method: string, segments: string[]): KeyVaultOperation {
  const [collection, , third] = segments;
  const n = segments.length;
  if (collection === 'secrets') {
    if (n === 1 && method === 'GET') return 'listSecrets';
    if (n === 2 && method === 'PUT') return 'setSecret';
    if (n === 2 && method === 'DELETE') return 'deleteSecret';
    if (n === 3 && method === 'GET' && third === 'versions') return 'listVersions';
    if ((n === 2 || n === 3) && method === 'GET') return 'getSecret';
  }
  if (collection === 'deletedsecrets' && n === 2) {
    if (method === 'GET') return 'getDeletedSecret';
    if (method === 'DELETE') return 'purgeDeletedSecret';
  }
  return 'unknown';
}

function assertName(name: string): void {
  if (!SECRET_NAME_PATTERN.test(name)) {
    throw new HttpError(400, 'BadParameter', `The request URI contains an invalid name: ${name}`);
  }
}

function isTags(value: unknown): value is Record<string, string> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const entries = Object.entries(value);
  return entries.length <= 15 && entries.every(([k, v]) => k.length <= 512 && typeof v === 'string' && v.length <= 256);
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) throw new HttpError(413, 'RequestEntityTooLarge', 'The request body is too large.');
    chunks.push(chunk);
  }
  if (size === 0) return undefined;
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    throw new HttpError(400, 'BadParameter', 'The request body is not valid JSON.');
  }
}

function nowSeconds(): number {
  return Math.floor(Date.now() / 1000);
}
