import type { HttpRequest } from '@azure/functions';

export type BodyText = { tooLarge: false; text: string } | { tooLarge: true };

/** Reads the body as UTF-8 text, stopping as soon as it passes `maxBytes` (never buffers an oversized body). */
export async function readBodyText(request: Pick<HttpRequest, 'headers' | 'body'>, maxBytes: number): Promise<BodyText> {
  const declared = Number(request.headers.get('content-length') ?? 0);
  if (declared > maxBytes) return { tooLarge: true };
  if (!request.body) return { tooLarge: false, text: '' };
  const reader = (request.body as ReadableStream<Uint8Array>).getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > maxBytes) {
      await reader.cancel();
      return { tooLarge: true };
    }
    chunks.push(value);
  }
  return { tooLarge: false, text: Buffer.concat(chunks).toString('utf8') };
}

/** What kind of body a request says it has: an HTML form, JSON, or something else. */
export function bodyKind(request: Pick<HttpRequest, 'headers'>): 'form' | 'json' | 'other' {
  const type = (request.headers.get('content-type') ?? '').split(';')[0]!.trim().toLowerCase();
  if (type === 'application/x-www-form-urlencoded') return 'form';
  if (type === 'application/json' || type.endsWith('+json')) return 'json';
  return 'other';
}
