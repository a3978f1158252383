import type { RefreshTokenRotation } from '../config/presets';

/** A reusable (Microsoft) refresh token is written at most this often: at most 366 versions a year. */
export const REUSABLE_WRITE_INTERVAL_MS = 24 * 60 * 60 * 1000;

/** The refresh token in the secret store, and when that version was written (unknown for a hand-written file). */
export interface StoredRefreshToken {
  value: string;
  writtenAt?: Date;
}

/**
 * Whether the refresh token a provider returned must be written to the secret store now. Each write is a new
 * Key Vault version that can never be deleted (and backups fail past 500), so nothing unchanged is written; a
 * reusable one waits until the stored version is a day old (the stored one keeps working meanwhile); anything
 * else that changed is written at once, because the previous one may already be dead.
 */
export function mustWriteRefreshToken(
  rotation: RefreshTokenRotation,
  returned: string | undefined,
  stored: StoredRefreshToken | undefined,
  now: number,
): boolean {
  if (returned === undefined || returned === stored?.value) return false;
  if (stored === undefined || rotation !== 'reusable') return true;
  return stored.writtenAt === undefined || now - stored.writtenAt.getTime() >= REUSABLE_WRITE_INTERVAL_MS;
}
