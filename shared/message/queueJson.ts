/** The Functions queue trigger and our decoder expect base64 of UTF-8 JSON; @azure/storage-queue does not encode. */
export function encodeQueueJson(value: unknown): string {
  return Buffer.from(JSON.stringify(value), 'utf8').toString('base64');
}

export function decodeQueueJson<T>(text: string): T {
  return JSON.parse(Buffer.from(text, 'base64').toString('utf8')) as T;
}
