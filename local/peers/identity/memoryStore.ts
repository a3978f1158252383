/**
 * Storage for oidc-provider's in-memory adapter without its 1,000-entry limit: the adapter's default store
 * evicts the oldest entries past that, so a few hundred accounts (a grant, a refresh token and an access token
 * each) lose their grants and get `invalid_grant`. Entries expire as the provider says; one store per provider.
 */
export class MemoryStore {
  private readonly entries = new Map<string, { value: unknown; expiresAt: number }>();

  get(key: string): unknown {
    const entry = this.entries.get(key);
    if (entry === undefined) return undefined;
    if (entry.expiresAt <= Date.now()) {
      this.entries.delete(key);
      return undefined;
    }
    return entry.value;
  }

  set(key: string, value: unknown, options?: { maxAge?: number }): void {
    this.entries.set(key, { value, expiresAt: options?.maxAge === undefined ? Infinity : Date.now() + options.maxAge });
  }

  delete(key: string): void {
    this.entries.delete(key);
  }
}
