/**
 * Who is sending: a device that logged in (AUTH PLAIN/LOGIN, checked against its password hash and, if it has
 * them, its source ranges), or a device without a user name that is recognized by the address it connects from.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Device } from './config';
import { bestMatch, inAnyRange } from './ipRanges';
import { DEFAULT_SCRYPT, hashPassword, scryptParams, verifyPassword } from './passwordHash';

const VERIFIED_TTL_MS = 15 * 60_000;

export type LoginResult =
  { ok: true; device: Device } | { ok: false; reason: 'unknown_user' | 'wrong_password' | 'source_not_allowed'; device?: Device };

export class DeviceRegistry {
  private readonly byUser = new Map<string, Device>();
  private readonly byName = new Map<string, Device>();
  private readonly byAddress: Array<{ range: Device['sourceRanges'][number]; value: Device }> = [];
  /** Checked for unknown user names too, so that the answer takes as long as for a known one. */
  private readonly dummyHash: Promise<string>;
  /**
   * Each check takes 16 MiB and a fifth of a second of a core: a burst of logins (a pool opening its
   * connections, or someone guessing from many addresses) waits its turn instead of taking all the memory.
   */
  private readonly checks = new Limiter(1);
  /**
   * The password a device last logged in with, as an HMAC under a key that lives only in this process, for
   * a while: many devices and programs open a connection per message, and one scrypt check per connection
   * would cost them a fifth of a second each. A wrong password never takes this path.
   */
  private readonly verified = new Map<string, { mac: Buffer; until: number }>();
  private readonly macKey = randomBytes(32);

  constructor(readonly devices: readonly Device[]) {
    for (const device of devices) {
      this.byName.set(device.name, device);
      if (device.user !== undefined) this.byUser.set(device.user.toLowerCase(), device);
      else for (const range of device.sourceRanges) this.byAddress.push({ range, value: device });
    }
    const sample = devices.find((d) => d.passwordHash)?.passwordHash;
    this.dummyHash = hashPassword(randomBytes(16).toString('hex'), (sample && scryptParams(sample)) || DEFAULT_SCRYPT);
  }

  byDeviceName(name: string): Device | undefined {
    return this.byName.get(name);
  }

  /** The device without a user name whose most specific range holds `address`. */
  byRemoteAddress(address: string): Device | undefined {
    return bestMatch(address, this.byAddress);
  }

  private mac(device: Device, password: string): Buffer {
    return createHmac('sha256', this.macKey).update(`${device.name}\0${device.passwordHash}\0${password}`).digest();
  }

  private recentlyVerified(device: Device, password: string): boolean {
    const entry = this.verified.get(device.name);
    if (!entry || entry.until < Date.now()) return false;
    return timingSafeEqual(entry.mac, this.mac(device, password));
  }

  async login(user: string, password: string, remoteAddress: string): Promise<LoginResult> {
    const device = this.byUser.get(user.toLowerCase());
    if (!device?.passwordHash) {
      const dummy = await this.dummyHash;
      await this.checks.run(() => verifyPassword(password, dummy));
      return { ok: false, reason: 'unknown_user' };
    }
    const hash = device.passwordHash;
    // Checked again after the wait: a connection that queued behind the first login of a pool needs no scrypt.
    const passwordOk =
      this.recentlyVerified(device, password) ||
      (await this.checks.run(async () => this.recentlyVerified(device, password) || verifyPassword(password, hash)));
    if (passwordOk) this.verified.set(device.name, { mac: this.mac(device, password), until: Date.now() + VERIFIED_TTL_MS });
    if (!passwordOk) return { ok: false, reason: 'wrong_password', device };
    if (device.sourceRanges.length > 0 && !inAnyRange(remoteAddress, device.sourceRanges))
      return { ok: false, reason: 'source_not_allowed', device };
    return { ok: true, device };
  }
}

/** Runs at most `limit` tasks at a time, the others in arrival order. */
class Limiter {
  private running = 0;
  private readonly waiting: Array<() => void> = [];

  constructor(private readonly limit: number) {}

  async run<T>(task: () => Promise<T>): Promise<T> {
    if (this.running >= this.limit) await new Promise<void>((resolve) => this.waiting.push(resolve));
    else this.running++;
    try {
      return await task();
    } finally {
      const next = this.waiting.shift();
      if (next) next();
      else this.running--;
    }
  }
}
