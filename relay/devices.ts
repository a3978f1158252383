/**
 * Who is sending: a device that logged in (AUTH PLAIN/LOGIN, checked against its password hash and, if it has
 * them, its source ranges), or a device without a user name that is recognized by the address it connects from.
 */
import { randomBytes } from 'node:crypto';
import type { Device } from './config';
import { bestMatch, inAnyRange } from './ipRanges';
import { DEFAULT_SCRYPT, hashPassword, scryptParams, verifyPassword } from './passwordHash';

export type LoginResult =
  { ok: true; device: Device } | { ok: false; reason: 'unknown_user' | 'wrong_password' | 'source_not_allowed'; device?: Device };

export class DeviceRegistry {
  private readonly byUser = new Map<string, Device>();
  private readonly byName = new Map<string, Device>();
  private readonly byAddress: Array<{ range: Device['sourceRanges'][number]; value: Device }> = [];
  /** Checked for unknown user names too, so that the answer takes as long as for a known one. */
  private readonly dummyHash: Promise<string>;

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

  async login(user: string, password: string, remoteAddress: string): Promise<LoginResult> {
    const device = this.byUser.get(user.toLowerCase());
    if (!device?.passwordHash) {
      await verifyPassword(password, await this.dummyHash);
      return { ok: false, reason: 'unknown_user' };
    }
    const passwordOk = await verifyPassword(password, device.passwordHash);
    if (!passwordOk) return { ok: false, reason: 'wrong_password', device };
    if (device.sourceRanges.length > 0 && !inAnyRange(remoteAddress, device.sourceRanges))
      return { ok: false, reason: 'source_not_allowed', device };
    return { ok: true, device };
  }
}
