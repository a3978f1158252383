/**
 * Device passwords are stored only as scrypt hashes, in a PHC-like string that carries its own parameters:
 *
 *   scrypt$N=16384,r=8,p=5$<salt, base64>$<hash, base64>
 *
 * The defaults follow OWASP's scrypt recommendation for 16 MiB of memory (N=2^14, r=8, p=5). A hash made with
 * other parameters keeps working, so they can be raised later without invalidating existing devices.
 */
import { randomBytes, scrypt, timingSafeEqual } from 'node:crypto';

export interface ScryptParams {
  N: number;
  r: number;
  p: number;
}

export const DEFAULT_SCRYPT: ScryptParams = { N: 2 ** 14, r: 8, p: 5 };

const SALT_BYTES = 16;
const HASH_BYTES = 32;
/** A configuration file must not be able to make one login take gigabytes or minutes. */
const LIMITS = { maxN: 2 ** 20, maxR: 32, maxP: 16, maxMemory: 1024 * 1024 * 1024 };

interface ParsedHash extends ScryptParams {
  salt: Buffer;
  hash: Buffer;
}

const FORMAT = /^scrypt\$N=(\d+),r=(\d+),p=(\d+)\$([A-Za-z0-9+/]+={0,2})\$([A-Za-z0-9+/]+={0,2})$/;

/** Why `encoded` is not a usable hash, or undefined when it is. */
export function passwordHashProblem(encoded: string): string | undefined {
  const match = FORMAT.exec(encoded);
  if (!match)
    return 'is not a password hash of the form scrypt$N=…,r=…,p=…$salt$hash (make one with `npm run relay -- hash-password`)';
  const [N, r, p] = [Number(match[1]), Number(match[2]), Number(match[3])];
  if (N < 2 || N > LIMITS.maxN || (N & (N - 1)) !== 0) return `scrypt N must be a power of two between 2 and ${LIMITS.maxN}`;
  if (r < 1 || r > LIMITS.maxR) return `scrypt r must be between 1 and ${LIMITS.maxR}`;
  if (p < 1 || p > LIMITS.maxP) return `scrypt p must be between 1 and ${LIMITS.maxP}`;
  if (memoryFor({ N, r, p }) > LIMITS.maxMemory) return 'scrypt parameters need more than 1 GiB of memory';
  if (Buffer.from(match[4]!, 'base64').length < 8) return 'the salt is shorter than 8 bytes';
  if (Buffer.from(match[5]!, 'base64').length < 16) return 'the hash is shorter than 16 bytes';
  return undefined;
}

function parse(encoded: string): ParsedHash {
  const problem = passwordHashProblem(encoded);
  if (problem) throw new Error(`Invalid password hash: ${problem}`);
  const match = FORMAT.exec(encoded)!;
  return {
    N: Number(match[1]),
    r: Number(match[2]),
    p: Number(match[3]),
    salt: Buffer.from(match[4]!, 'base64'),
    hash: Buffer.from(match[5]!, 'base64'),
  };
}

/** The parameters a hash was made with. */
export function scryptParams(encoded: string): ScryptParams | undefined {
  if (passwordHashProblem(encoded)) return undefined;
  const { N, r, p } = parse(encoded);
  return { N, r, p };
}

const memoryFor = ({ N, r, p }: ScryptParams) => 128 * N * r + 128 * r * p + 1024 * 1024;

function derive(password: string, salt: Buffer, length: number, params: ScryptParams): Promise<Buffer> {
  return new Promise((resolve, reject) =>
    scrypt(password.normalize('NFC'), salt, length, { ...params, maxmem: 2 * memoryFor(params) }, (error, key) =>
      error ? reject(error) : resolve(key),
    ),
  );
}

export async function hashPassword(password: string, params: ScryptParams = DEFAULT_SCRYPT): Promise<string> {
  if (password.length === 0) throw new Error('The password is empty.');
  const salt = randomBytes(SALT_BYTES);
  const hash = await derive(password, salt, HASH_BYTES, params);
  return `scrypt$N=${params.N},r=${params.r},p=${params.p}$${salt.toString('base64')}$${hash.toString('base64')}`;
}

/** Constant-time comparison of the derived key; false (never an exception) for a wrong password. */
export async function verifyPassword(password: string, encoded: string): Promise<boolean> {
  const parsed = parse(encoded);
  const candidate = await derive(password, parsed.salt, parsed.hash.length, parsed);
  return timingSafeEqual(candidate, parsed.hash);
}
