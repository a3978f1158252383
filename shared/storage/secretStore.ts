/**
 * Where tokens and client secrets live: Azure Key Vault in Azure, a local JSON file for development.
 * Names: letters, digits and dashes, at most 127 characters; values at most 25 KB (Key Vault's limits,
 * enforced by both implementations so that local and Azure behave alike).
 */
export interface SecretStore {
  /** The current value, or undefined when the secret does not exist (or is disabled/deleted). */
  get(name: string): Promise<string | undefined>;
  /** As `get`, with the time the current version was written (absent for an entry typed into the local file). */
  read(name: string): Promise<SecretVersion | undefined>;
  /** Writes a new version. Callers write only when the value changed. */
  set(name: string, value: string, options?: { contentType?: string; tags?: Record<string, string> }): Promise<void>;
  /**
   * Removes the secret (Key Vault: deletes it, soft-delete keeps it recoverable for the vault's retention).
   * Absent is not an error. Optional: a store without it leaves the secret in place, and the caller says so.
   */
  delete?(name: string): Promise<void>;
}

export interface SecretVersion {
  value: string;
  writtenAt?: Date;
}

export const SECRET_NAME_PATTERN = /^[0-9a-zA-Z-]{1,127}$/;
export const SECRET_VALUE_MAX_BYTES = 25 * 1024;

/** Key Vault's limits on secret metadata. */
export const SECRET_CONTENT_TYPE_MAX_CHARS = 255;
export const SECRET_TAGS_MAX_COUNT = 15;
export const SECRET_TAG_NAME_MAX_CHARS = 512;
export const SECRET_TAG_VALUE_MAX_CHARS = 256;

export type SecretSetOptions = NonNullable<Parameters<SecretStore['set']>[2]>;

/** Throws when name breaks Key Vault's naming rule. The message shows at most the start of the name. */
export function assertSecretName(name: string): void {
  if (typeof name !== 'string' || !SECRET_NAME_PATTERN.test(name)) {
    throw new RangeError(
      `Invalid secret name ${describeName(name)}: use 1 to 127 letters, digits and dashes (Key Vault's rule).`,
    );
  }
}

/** Throws when a write would be refused by Key Vault. Never puts the value into the message. */
export function assertSecretWrite(name: string, value: string, options: SecretSetOptions = {}): void {
  assertSecretName(name);
  if (typeof value !== 'string') throw new TypeError(`Secret "${name}": the value must be a string.`);
  const bytes = Buffer.byteLength(value, 'utf8');
  if (bytes > SECRET_VALUE_MAX_BYTES) {
    throw new RangeError(
      `Secret "${name}" is ${bytes} bytes; the limit is ${SECRET_VALUE_MAX_BYTES} bytes (25 KB, Key Vault's limit).`,
    );
  }
  const { contentType, tags } = options;
  if (contentType !== undefined && contentType.length > SECRET_CONTENT_TYPE_MAX_CHARS) {
    throw new RangeError(`Secret "${name}": contentType is longer than ${SECRET_CONTENT_TYPE_MAX_CHARS} characters.`);
  }
  if (tags !== undefined) {
    const entries = Object.entries(tags);
    if (entries.length > SECRET_TAGS_MAX_COUNT) {
      throw new RangeError(`Secret "${name}": at most ${SECRET_TAGS_MAX_COUNT} tags are allowed.`);
    }
    for (const [tagName, tagValue] of entries) {
      if (
        tagName.length > SECRET_TAG_NAME_MAX_CHARS ||
        typeof tagValue !== 'string' ||
        tagValue.length > SECRET_TAG_VALUE_MAX_CHARS
      ) {
        throw new RangeError(
          `Secret "${name}": tag names are limited to ${SECRET_TAG_NAME_MAX_CHARS} characters and tag values to ${SECRET_TAG_VALUE_MAX_CHARS} characters of text.`,
        );
      }
    }
  }
}

/** A failed store operation. Carries no secret value and no request/response objects that could hold one. */
export class SecretStoreError extends Error {
  override readonly name = 'SecretStoreError';
  constructor(
    message: string,
    readonly operation: 'get' | 'set' | 'delete',
    readonly secretName: string,
    /** HTTP status from Key Vault, when there was a response. */
    readonly statusCode?: number,
    /** Service or system error code, e.g. "Forbidden", "ECONNREFUSED". */
    readonly code?: string,
    /** With a 429 (Key Vault's throttling): how long the service asked us to wait. */
    readonly retryAfterMs?: number,
  ) {
    super(message);
  }
}

/** True for Key Vault's 429: the vault is over its limit for the moment; nothing is wrong with the secret. */
export function isThrottled(error: unknown): error is SecretStoreError & { retryAfterMs: number } {
  return error instanceof SecretStoreError && error.statusCode === 429 && error.retryAfterMs !== undefined;
}

function describeName(name: unknown): string {
  if (typeof name !== 'string') return `(${typeof name})`;
  return name.length > 40 ? `${JSON.stringify(name.slice(0, 40))}... (${name.length} characters)` : JSON.stringify(name);
}
