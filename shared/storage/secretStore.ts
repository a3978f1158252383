/**
 * Where tokens and client secrets live: Azure Key Vault in Azure, a local JSON file for development.
 * Names: letters, digits and dashes, at most 127 characters; values at most 25 KB (Key Vault's limits,
 * enforced by both implementations so that local and Azure behave alike).
 */
export interface SecretStore {
  /** The current value, or undefined when the secret does not exist (or is disabled/deleted). */
  get(name: string): Promise<string | undefined>;
  /** Writes a new version. Callers write only when the value changed. */
  set(name: string, value: string, options?: { contentType?: string; tags?: Record<string, string> }): Promise<void>;
}

export const SECRET_NAME_PATTERN = /^[0-9a-zA-Z-]{1,127}$/;
export const SECRET_VALUE_MAX_BYTES = 25 * 1024;
