/**
 * A stand-in for the Application Insights ingestion endpoint (`POST /v2.1/track`, a JSON array of envelopes) on
 * loopback: it records every request and answers as the service does, 200 with itemsReceived/itemsAccepted/errors,
 * unless told to answer the next requests otherwise (500, 429, 401, 400, or 206 refusing some items by index).
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { TraceEnvelope } from '../../relay/telemetryExport';

export const TEST_INSTRUMENTATION_KEY = '00000000-1111-2222-3333-444444444444';

export type IngestionAnswer =
  | { status: 200 }
  /** Every item refused with this status. */
  | { status: 400 | 401 | 403 | 429 | 500 | 503 }
  /** Partial success: the items at these indexes refused with their status, the others accepted. */
  | { status: 206; refused: Array<{ index: number; statusCode: number }> };

export interface IngestionRequest {
  headers: http.IncomingHttpHeaders;
  /** The raw body, for searching it for what must never be sent. */
  text: string;
  envelopes: TraceEnvelope[];
  status: number;
}

export interface IngestionDouble {
  /** The ingestion endpoint, with its trailing slash. */
  readonly endpoint: string;
  connectionString(key?: string): string;
  readonly requests: IngestionRequest[];
  /** The items answered as accepted, in order of arrival. */
  readonly accepted: TraceEnvelope[];
  /** Answers for the next requests, in order; then 200 again. */
  answerNext(...answers: IngestionAnswer[]): void;
  close(): Promise<void>;
}

export async function startIngestionDouble(): Promise<IngestionDouble> {
  const requests: IngestionRequest[] = [];
  const accepted: TraceEnvelope[] = [];
  const answers: IngestionAnswer[] = [];
  const server = http.createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      if (request.method !== 'POST' || request.url !== '/v2.1/track') {
        response.writeHead(404).end();
        return;
      }
      const text = Buffer.concat(chunks).toString('utf8');
      const envelopes = JSON.parse(text) as TraceEnvelope[];
      const answer = answers.shift() ?? { status: 200 };
      const refused =
        answer.status === 200
          ? []
          : answer.status === 206
            ? answer.refused
            : envelopes.map((_, index) => ({ index, statusCode: answer.status }));
      const refusedIndexes = new Set(refused.map((r) => r.index));
      accepted.push(...envelopes.filter((_, index) => !refusedIndexes.has(index)));
      requests.push({ headers: request.headers, text, envelopes, status: answer.status });
      response.writeHead(answer.status, { 'content-type': 'application/json' }).end(
        JSON.stringify({
          itemsReceived: envelopes.length,
          itemsAccepted: envelopes.length - refused.length,
          errors: refused.map((r) => ({ ...r, message: `refused with ${r.statusCode} by the test` })),
        }),
      );
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
  return {
    endpoint,
    connectionString: (key = TEST_INSTRUMENTATION_KEY) =>
      `InstrumentationKey=${key};IngestionEndpoint=${endpoint};ApplicationId=test`,
    requests,
    accepted,
    answerNext: (...next) => void answers.push(...next),
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
