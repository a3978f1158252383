import { randomBytes } from 'node:crypto';
import { mkdir, open, readFile, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { assertSecretName, assertSecretWrite, type SecretSetOptions, type SecretStore, type SecretVersion } from './secretStore';

interface StoredSecret {
  value: string;
  contentType?: string;
  tags?: Record<string, string>;
  /** false hides the secret, like a disabled secret in Key Vault. */
  enabled?: boolean;
  updated?: string;
}

/** Hand-written files may give a secret as a plain string. Other top-level keys are kept as they are. */
type SecretsFile = { secrets: Record<string, StoredSecret | string>; [key: string]: unknown };

/**
 * Secrets in one local JSON file, for development: `{ "secrets": { "<name>": { "value": "..." } } }`
 * (an entry may also be just the value as a string). Writes replace the file atomically (temporary file, then
 * rename) with mode 0600 and are serialized within this process; another process writing the same file at the
 * same time can lose updates.
 */
export class FileSecretStore implements SecretStore {
  private writeQueue: Promise<unknown> = Promise.resolve();

  constructor(readonly path: string) {}

  async get(name: string): Promise<string | undefined> {
    return (await this.read(name))?.value;
  }

  async read(name: string): Promise<SecretVersion | undefined> {
    assertSecretName(name);
    const { secrets } = await this.readFile();
    const key = keyOf(secrets, name);
    const entry = key === undefined ? undefined : secrets[key];
    if (entry === undefined) return undefined;
    if (typeof entry === 'string') return { value: entry };
    if (entry.enabled === false) return undefined;
    const writtenAt = entry.updated === undefined ? undefined : new Date(entry.updated);
    return { value: entry.value, ...(writtenAt && !Number.isNaN(writtenAt.getTime()) ? { writtenAt } : {}) };
  }

  async set(name: string, value: string, options: SecretSetOptions = {}): Promise<void> {
    assertSecretWrite(name, value, options);
    const write = this.writeQueue.then(async () => {
      const file = await this.readFile();
      const entry: StoredSecret = { value, updated: new Date().toISOString() };
      if (options.contentType !== undefined) entry.contentType = options.contentType;
      if (options.tags !== undefined) entry.tags = { ...options.tags };
      file.secrets[keyOf(file.secrets, name) ?? name] = entry;
      await this.replaceFile(`${JSON.stringify(file, null, 2)}\n`);
    });
    // A failed write must not block the ones queued after it.
    this.writeQueue = write.catch(() => undefined);
    return write;
  }

  async delete(name: string): Promise<void> {
    assertSecretName(name);
    const write = this.writeQueue.then(async () => {
      const file = await this.readFile();
      const key = keyOf(file.secrets, name);
      if (key === undefined) return;
      delete file.secrets[key];
      await this.replaceFile(`${JSON.stringify(file, null, 2)}\n`);
    });
    this.writeQueue = write.catch(() => undefined);
    return write;
  }

  private async readFile(): Promise<SecretsFile> {
    let text: string;
    try {
      text = await readFile(this.path, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { secrets: Object.create(null) };
      throw error;
    }
    // JSON.parse errors quote the text around the problem, which may be a secret: report only the file.
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      throw new Error(`Secrets file ${this.path} is not valid JSON.`);
    }
    if (!isSecretsFile(parsed)) {
      throw new Error(
        `Secrets file ${this.path} must look like {"secrets": {"<name>": {"value": "<text>"}}} (or "<name>": "<text>").`,
      );
    }
    // A prototype-less map, so that a secret named e.g. "constructor" is not found on Object.prototype.
    return { ...parsed, secrets: Object.assign(Object.create(null), parsed.secrets) };
  }

  private async replaceFile(content: string): Promise<void> {
    const dir = dirname(this.path);
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const temp = join(dir, `.${basename(this.path)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
    try {
      const handle = await open(temp, 'wx', 0o600);
      try {
        await handle.writeFile(content, 'utf8');
        await handle.sync();
      } finally {
        await handle.close();
      }
      await rename(temp, this.path);
    } catch (error) {
      await rm(temp, { force: true });
      throw error;
    }
  }
}

// Names are case-insensitive, as in Key Vault.
function keyOf(secrets: SecretsFile['secrets'], name: string): string | undefined {
  if (name in secrets) return name;
  const lower = name.toLowerCase();
  return Object.keys(secrets).find((key) => key.toLowerCase() === lower);
}

function isSecretsFile(value: unknown): value is SecretsFile {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const secrets = (value as { secrets?: unknown }).secrets;
  if (typeof secrets !== 'object' || secrets === null || Array.isArray(secrets)) return false;
  return Object.values(secrets).every(
    (entry) =>
      typeof entry === 'string' ||
      (typeof entry === 'object' && entry !== null && typeof (entry as { value?: unknown }).value === 'string'),
  );
}
