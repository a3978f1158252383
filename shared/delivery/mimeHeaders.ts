/**
 * Just enough of a MIME message's header block (RFC 5322 section 2.2): the fields up to the first blank line,
 * unfolded, with their byte ranges so that one field can be cut out and every other byte left as it was.
 */
export interface HeaderField {
  /** As written, without the colon. */
  name: string;
  /** Unfolded, undecoded: bytes as latin1 characters. */
  value: string;
  /** Byte range of the field, continuation lines and line ends included. */
  start: number;
  end: number;
}

export function readHeaderBlock(raw: Buffer): HeaderField[] {
  const text = raw.toString('latin1');
  const fields: HeaderField[] = [];
  let pos = 0;
  while (pos < text.length) {
    const newline = text.indexOf('\n', pos);
    const lineEnd = newline < 0 ? text.length : newline + 1;
    const line = text.slice(pos, lineEnd).replace(/\r?\n$/, '');
    if (line === '') break;
    const last = fields[fields.length - 1];
    if ((line.startsWith(' ') || line.startsWith('\t')) && last) {
      last.value += line;
      last.end = lineEnd;
    } else {
      const colon = line.indexOf(':');
      fields.push({
        name: colon > 0 ? line.slice(0, colon).trim() : '',
        value: colon > 0 ? line.slice(colon + 1) : line,
        start: pos,
        end: lineEnd,
      });
    }
    pos = lineEnd;
  }
  return fields;
}

/** The values of every field called `name` (case-insensitive), as text (UTF-8 headers allowed, RFC 6532). */
export function headerValues(fields: readonly HeaderField[], name: string): string[] {
  const wanted = name.toLowerCase();
  return fields
    .filter((field) => field.name.toLowerCase() === wanted)
    .map((field) => Buffer.from(field.value, 'latin1').toString('utf8').trim());
}

/** The message without the fields called `name`: continuation lines go with them, no other byte changes. */
export function withoutHeader(raw: Buffer, fields: readonly HeaderField[], name: string): Buffer {
  const wanted = name.toLowerCase();
  const cut = fields.filter((field) => field.name.toLowerCase() === wanted);
  if (cut.length === 0) return raw;
  const parts: Buffer[] = [];
  let pos = 0;
  for (const field of cut) {
    parts.push(raw.subarray(pos, field.start));
    pos = field.end;
  }
  parts.push(raw.subarray(pos));
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
