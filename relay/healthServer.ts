/**
 * The relay's small HTTP server on the health port:
 *
 *   GET  /health            200 `ok` while the relay accepts mail and its last storage requests succeeded; 503
 *                           `stopping` once a shutdown has begun (so a load balancer drains it), 503
 *                           `storage_failing` naming what failed
 *   GET  /logins/blocked    the client addresses with failed logins (local callers only)
 *   POST /logins/unblock    `{"address": "10.0.0.5"}` lifts that address's block, `{}` every block (local only)
 *
 * "Local" is a caller on the relay's own machine: a loopback address, or the machine calling one of its own
 * addresses (then both ends of the connection are the same address). Behind Docker's port mapping or a load
 * balancer the caller is another address, so the login routes answer 403 there: run `unblock` where the relay runs
 * (`docker exec`, `kubectl exec`).
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { clientKey, inAnyRange, parseIpRange } from './ipRanges';
import type { BlockedAddress } from './loginThrottle';

export type HealthCondition = 'stopping' | { part: string; since: string }[];

export interface HealthServerHandlers {
  condition(): HealthCondition;
  blockedLogins(): BlockedAddress[];
  /** Lifts the block of one client address (as clientKey gives it), or of all; returns how many. */
  unblockLogins(address?: string): number;
}

/** Largest request body the login routes read. */
const MAX_BODY_BYTES = 1024;

const LOOPBACK = ['127.0.0.0/8', '::1/128'].map(parseIpRange);

export function isLocalCaller(remote: string | undefined, local: string | undefined): boolean {
  if (!remote) return false;
  return inAnyRange(remote, LOOPBACK) || remote === local;
}

export async function startHealthServer(
  address: { host: string | undefined; port: number },
  handlers: HealthServerHandlers,
): Promise<{ port: number; close(): Promise<void> }> {
  const server = http.createServer((request, response) => {
    const path = (request.url ?? '').split('?')[0];
    const reply = (status: number, body: object, headers: Record<string, string> = {}) =>
      response
        .writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store', ...headers })
        .end(JSON.stringify(body));

    if (path === '/health') {
      if (request.method !== 'GET' && request.method !== 'HEAD')
        return reply(405, { status: 'method not allowed' }, { allow: 'GET, HEAD' });
      const now = handlers.condition();
      const body =
        now === 'stopping'
          ? { status: 'stopping' }
          : now.length > 0
            ? { status: 'storage_failing', failing: now.map(({ part, since }) => ({ part, since })) }
            : { status: 'ok' };
      return reply(body.status === 'ok' ? 200 : 503, body);
    }
    if (path !== '/logins/blocked' && path !== '/logins/unblock') return reply(404, { status: 'not found' });
    if (!isLocalCaller(request.socket.remoteAddress, request.socket.localAddress))
      return reply(403, { status: 'forbidden', reason: "only a caller on the relay's own machine may do this" });
    if (path === '/logins/blocked') {
      if (request.method !== 'GET') return reply(405, { status: 'method not allowed' }, { allow: 'GET' });
      return reply(200, { blocked: handlers.blockedLogins() });
    }
    if (request.method !== 'POST') return reply(405, { status: 'method not allowed' }, { allow: 'POST' });
    void readJson(request).then(
      (body) => {
        const address = typeof body.address === 'string' && body.address !== '' ? clientKey(body.address) : undefined;
        if (body.address !== undefined && address === undefined) return reply(400, { status: 'address must be text' });
        reply(200, { address: address ?? null, unblocked: handlers.unblockLogins(address) });
      },
      (error: Error) => reply(400, { status: 'bad request', reason: error.message }),
    );
  });
  server.keepAliveTimeout = 1_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(address.port, address.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

async function readJson(request: http.IncomingMessage): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of request) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY_BYTES) throw new Error('body too large');
    chunks.push(chunk as Buffer);
  }
  const text = Buffer.concat(chunks).toString('utf8').trim();
  if (text === '') return {};
  const json: unknown = JSON.parse(text);
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new Error('body must be a JSON object');
  return json as Record<string, unknown>;
}
