/**
 * Reads the header section of a MIME message as received, without re-encoding anything: the sender checks (in
 * the relay and the send path) need the From and Sender addresses, and a Bcc field is cut out by byte range so
 * the rest stays byte for byte.
 */
import addressparser from 'nodemailer/lib/addressparser';

export interface HeaderField {
  /** Lower-case field name; '' for a line that is not a field (kept as it is). */
  readonly name: string;
  /** Byte range of the whole field in the header, continuation lines and line ending included. */
  readonly start: number;
  readonly end: number;
}

const CR = 0x0d;
const LF = 0x0a;
const SP = 0x20;
const HT = 0x09;

/**
 * Where the header section ends: the offset just past the empty line that separates it from the body, or
 * undefined while it has not been seen. Accepts CRLF and bare LF line endings.
 */
export function findHeaderEnd(data: Buffer): number | undefined {
  if (data[0] === LF) return 1;
  if (data[0] === CR && data[1] === LF) return 2;
  for (let i = data.indexOf(LF); i !== -1 && i + 1 < data.length; i = data.indexOf(LF, i + 1)) {
    if (data[i + 1] === LF) return i + 2;
    if (data[i + 1] === CR && data[i + 2] === LF) return i + 3;
  }
  return undefined;
}

/** The fields of a header section (`header` may include the empty line that ends it; it is not a field). */
export function headerFields(header: Buffer): HeaderField[] {
  const fields: HeaderField[] = [];
  let start = 0;
  let current: { name: string; start: number } | undefined;
  while (start < header.length) {
    const lf = header.indexOf(LF, start);
    const end = lf === -1 ? header.length : lf + 1;
    const first = header[start];
    const emptyLine = end - start === 1 || (end - start === 2 && first === CR);
    if (emptyLine && lf !== -1) {
      if (current) fields.push({ ...current, end: start });
      current = undefined;
      break;
    }
    if ((first === SP || first === HT) && current) {
      start = end;
      continue;
    }
    if (current) fields.push({ ...current, end: start });
    const colon = header.indexOf(0x3a, start);
    const name = colon !== -1 && colon < end ? header.toString('latin1', start, colon).trim().toLowerCase() : '';
    current = { name: /^[\x21-\x39\x3b-\x7e]+$/.test(name) ? name : '', start };
    start = end;
  }
  if (current) fields.push({ ...current, end: start });
  return fields;
}

/** The unfolded value of a field, decoded as UTF-8 (SMTPUTF8 headers carry raw UTF-8). */
export function fieldValue(header: Buffer, field: HeaderField): string {
  const text = header.toString('utf8', field.start, field.end);
  return text
    .slice(text.indexOf(':') + 1)
    .replace(/\r?\n(?=[ \t])/g, '')
    .replace(/\r?\n$/, '')
    .trim();
}

/** The unfolded values of every field called `name` (lower case). */
export function fieldValues(header: Buffer, fields: readonly HeaderField[], name: string): string[] {
  return fields.filter((f) => f.name === name).map((f) => fieldValue(header, f));
}

/** The mailbox addresses of an address field (groups flattened), lower-cased. */
export function fieldAddresses(header: Buffer, field: HeaderField): string[] {
  return addressparser(fieldValue(header, field), { flatten: true })
    .map((entry) => entry.address.trim().toLowerCase())
    .filter(Boolean);
}

export interface SenderHeaders {
  /** Number of From fields (RFC 5322 wants exactly one). */
  fromFields: number;
  from: string[];
  /** Undefined when there is no Sender field. */
  sender: string[] | undefined;
  senderFields: number;
}

export function senderHeaders(header: Buffer, fields: readonly HeaderField[] = headerFields(header)): SenderHeaders {
  const from = fields.filter((f) => f.name === 'from');
  const sender = fields.filter((f) => f.name === 'sender');
  return {
    fromFields: from.length,
    from: from.flatMap((f) => fieldAddresses(header, f)),
    sender: sender.length ? sender.flatMap((f) => fieldAddresses(header, f)) : undefined,
    senderFields: sender.length,
  };
}

/**
 * The header (or the whole message) without its Bcc fields, every other byte unchanged; the same Buffer when
 * there is none. The envelope carries the blind copies, so the MIME must not show them to the other recipients.
 */
export function withoutBcc(header: Buffer, fields: readonly HeaderField[] = headerFields(header)): Buffer {
  const bcc = fields.filter((f) => f.name === 'bcc');
  if (bcc.length === 0) return header;
  const parts: Buffer[] = [];
  let at = 0;
  for (const field of bcc) {
    parts.push(header.subarray(at, field.start));
    at = field.end;
  }
  parts.push(header.subarray(at));
  return Buffer.concat(parts);
}

const ENCODED_WORD = /=\?([^?\s]+)\?([BbQq])\?([^?\s]*)\?=/g;
const CHARSETS: Record<string, BufferEncoding> = { 'utf-8': 'utf8', utf8: 'utf8', 'us-ascii': 'latin1', 'iso-8859-1': 'latin1' };

/**
 * Decodes RFC 2047 encoded words in UTF-8, US-ASCII or ISO-8859-1 (adjacent words of one charset are joined
 * before decoding, so a character split between two words survives). Any other charset: the value as it is.
 */
export function decodeEncodedWords(value: string): string {
  const matches = [...value.matchAll(ENCODED_WORD)];
  if (matches.length === 0) return value;
  if (matches.some((m) => !CHARSETS[m[1]!.toLowerCase().split('*')[0]!])) return value;
  let out = '';
  let pos = 0;
  let pending: { encoding: BufferEncoding; bytes: Buffer[] } | undefined;
  const flush = () => {
    if (pending) out += Buffer.concat(pending.bytes).toString(pending.encoding);
    pending = undefined;
  };
  for (const match of matches) {
    const between = value.slice(pos, match.index);
    const encoding = CHARSETS[match[1]!.toLowerCase().split('*')[0]!]!;
    // Whitespace between two encoded words is not part of the text (RFC 2047 section 6.2).
    if (!(pending && /^\s*$/.test(between) && pending.encoding === encoding)) {
      flush();
      out += between;
    }
    const text = match[3]!;
    const bytes =
      match[2]!.toUpperCase() === 'B'
        ? Buffer.from(text, 'base64')
        : Buffer.from(
            text.replace(/_/g, ' ').replace(/=([0-9A-Fa-f]{2})/g, (_m, hex: string) => String.fromCharCode(parseInt(hex, 16))),
            'latin1',
          );
    pending ??= { encoding, bytes: [] };
    pending.bytes.push(bytes);
    pos = match.index + match[0].length;
  }
  flush();
  return out + value.slice(pos);
}
