import { randomBytes } from 'node:crypto';
import type { SecretStore } from '../storage/secretStore';
import { sealKeyFrom, type SealKey } from './accessTokenSeal';

/** The Key Vault secret that holds the key sealing the access tokens kept in table storage. */
export const ACCESS_TOKEN_KEY_SECRET = 'outbox-access-token-key';

/** Reloading the key because a row names another one happens at most this often. */
const RELOAD_AFTER_MS = 60_000;

/**
 * The data key, read from the secret store once per process (one Key Vault read per cold start, not one per
 * account), and created on the first use of a new deployment. Two instances creating it at the same moment end
 * with two versions; each takes the latest after its write, and a row sealed with the other key reads as absent
 * (a refresh), until `reloadIfNot` picks up the newer one.
 */
export class AccessTokenKey {
  private current: Promise<SealKey> | undefined;
  private loadedAt = 0;

  constructor(
    private readonly secrets: SecretStore,
    private readonly now: () => number = Date.now,
  ) {}

  get(): Promise<SealKey> {
    if (!this.current) {
      this.loadedAt = this.now();
      this.current = this.load();
      // A failed read (Key Vault down or throttled) is not remembered: the next caller tries again.
      this.current.catch(() => (this.current = undefined));
    }
    return this.current;
  }

  /** When a row was sealed with another key (rotated by an admin, or created by a racing instance): read again. */
  async reloadIfNot(keyId: string): Promise<SealKey> {
    const key = await this.get();
    if (key.id === keyId || this.now() - this.loadedAt < RELOAD_AFTER_MS) return key;
    this.current = undefined;
    return this.get();
  }

  private async load(): Promise<SealKey> {
    const stored = await this.secrets.get(ACCESS_TOKEN_KEY_SECRET);
    if (stored !== undefined) return sealKeyFrom(Buffer.from(stored, 'base64'));
    await this.secrets.set(ACCESS_TOKEN_KEY_SECRET, randomBytes(32).toString('base64'), {
      contentType: 'aes-256-gcm key for the access tokens in table storage',
    });
    const written = await this.secrets.get(ACCESS_TOKEN_KEY_SECRET);
    if (written === undefined) throw new Error(`The secret ${ACCESS_TOKEN_KEY_SECRET} was written but cannot be read back.`);
    return sealKeyFrom(Buffer.from(written, 'base64'));
  }
}
