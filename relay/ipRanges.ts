/**
 * IP ranges in CIDR notation (`10.0.0.0/8`, `192.168.1.20`, `2001:db8::/32`). IPv4 is kept in the IPv4-mapped
 * IPv6 space (::ffff:0:0/96), so an IPv4 client of a dual-stack listener (`::ffff:10.1.2.3`) matches `10.0.0.0/8`.
 */
import net from 'node:net';

export interface IpRange {
  /** As written in the configuration, for messages and logs. */
  readonly text: string;
  readonly bytes: Buffer;
  /** Prefix length in the 128-bit space (an IPv4 /24 is 120). */
  readonly prefix: number;
}

/** Parses `address[/prefix]`; throws an Error whose message says what is wrong. */
export function parseIpRange(text: string): IpRange {
  const [address = '', prefixText, extra] = text.trim().split('/');
  if (extra !== undefined) throw new Error('has more than one "/"');
  const family = net.isIP(address);
  if (family === 0) throw new Error(`"${address}" is not an IPv4 or IPv6 address`);
  const max = family === 4 ? 32 : 128;
  let prefix = max;
  if (prefixText !== undefined) {
    if (!/^\d{1,3}$/.test(prefixText) || Number(prefixText) > max)
      throw new Error(`the prefix length must be a number from 0 to ${max}`);
    prefix = Number(prefixText);
  }
  const bytes = addressBytes(address)!;
  const prefix128 = family === 4 ? prefix + 96 : prefix;
  if (!sameNetwork(bytes, bytes, prefix128, true))
    throw new Error(`has host bits set: did you mean ${formatNetwork(bytes, prefix128, family)}/${prefix}?`);
  return { text: text.trim(), bytes, prefix: prefix128 };
}

/** The 16 bytes of an IPv4 or IPv6 address (IPv4 as ::ffff:a.b.c.d); undefined if it is neither. */
export function addressBytes(address: string): Buffer | undefined {
  const plain = address.replace(/%.*$/, '');
  const family = net.isIP(plain);
  if (family === 4) return Buffer.from([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, ...plain.split('.').map(Number)]);
  if (family !== 6) return undefined;
  let text = plain.toLowerCase();
  let tail: number[] = [];
  const lastColon = text.lastIndexOf(':');
  if (text.includes('.', lastColon)) {
    const v4 = text
      .slice(lastColon + 1)
      .split('.')
      .map(Number);
    tail = [(v4[0]! << 8) | v4[1]!, (v4[2]! << 8) | v4[3]!];
    text = text.slice(0, lastColon + 1) + '0:0';
  }
  const [head = '', rest] = text.split('::');
  const headGroups = head ? head.split(':') : [];
  const restGroups = rest ? rest.split(':') : [];
  const zeros = rest === undefined ? 0 : 8 - headGroups.length - restGroups.length;
  const groups = [...headGroups, ...Array<string>(zeros).fill('0'), ...restGroups].map((g) => parseInt(g, 16));
  if (tail.length) groups.splice(6, 2, ...tail);
  const bytes = Buffer.alloc(16);
  groups.forEach((group, i) => bytes.writeUInt16BE(group, i * 2));
  return bytes;
}

function sameNetwork(a: Buffer, b: Buffer, prefix: number, hostBitsZero = false): boolean {
  for (let bit = 0; bit < 128; bit += 8) {
    const remaining = prefix - bit;
    const mask = remaining >= 8 ? 0xff : remaining <= 0 ? 0 : (0xff << (8 - remaining)) & 0xff;
    const i = bit / 8;
    if (hostBitsZero) {
      if ((a[i]! & ~mask & 0xff) !== 0) return false;
    } else if ((a[i]! & mask) !== (b[i]! & mask)) return false;
  }
  return true;
}

function formatNetwork(bytes: Buffer, prefix: number, family: number): string {
  const masked = Buffer.from(bytes);
  for (let i = 0; i < 16; i++) {
    const remaining = prefix - i * 8;
    masked[i] = masked[i]! & (remaining >= 8 ? 0xff : remaining <= 0 ? 0 : (0xff << (8 - remaining)) & 0xff);
  }
  if (family === 4) return [...masked.subarray(12)].join('.');
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(masked.readUInt16BE(i).toString(16));
  return groups.join(':').replace(/(^|:)0(:0)+(:|$)/, '::');
}

export function inRange(address: string, range: IpRange): boolean {
  const bytes = addressBytes(address);
  return bytes !== undefined && sameNetwork(bytes, range.bytes, range.prefix);
}

/** The most specific range that holds `address`, if any. */
export function bestMatch<T>(address: string, entries: ReadonlyArray<{ range: IpRange; value: T }>): T | undefined {
  const bytes = addressBytes(address);
  if (!bytes) return undefined;
  let best: { prefix: number; value: T } | undefined;
  for (const { range, value } of entries) {
    if (sameNetwork(bytes, range.bytes, range.prefix) && (!best || range.prefix > best.prefix))
      best = { prefix: range.prefix, value };
  }
  return best?.value;
}

export const inAnyRange = (address: string, ranges: readonly IpRange[]) => ranges.some((range) => inRange(address, range));

/**
 * Who a client is for counting failed logins: its IPv4 address, or the /64 of an IPv6 address (one site or
 * one host gets a whole /64, and could otherwise change its address with every guess).
 */
export function clientKey(address: string): string {
  const bytes = addressBytes(address);
  if (!bytes) return address;
  const v4 = bytes.subarray(0, 12).equals(Buffer.from([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff]));
  return v4
    ? [...bytes.subarray(12)].join('.')
    : `${bytes
        .subarray(0, 8)
        .toString('hex')
        .replace(/(.{4})(?!$)/g, '$1:')}::/64`;
}
