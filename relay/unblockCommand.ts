/**
 * `npm run relay -- unblock [address | --all]`: lists the client addresses with failed logins, or lifts the block of
 * one (or all) in the running relay, through its health port (the relay answers these routes only to callers on
 * its own machine). Run it where the relay runs; it reads the same configuration file to find the port.
 */
import { ConfigError } from '../shared/errors';
import type { RelayConfig } from './config';
import type { BlockedAddress } from './loginThrottle';

export type UnblockRequest = { kind: 'list' } | { kind: 'one'; address: string } | { kind: 'all' };

/** Where the health port answers a caller on this machine. */
export function healthBaseUrl(config: Pick<RelayConfig, 'health'>): string {
  if (!config.health)
    throw new ConfigError(
      'unblock talks to the running relay through its health port: add "health": {"port": 8025} to the configuration, or restart the relay (or send it SIGUSR2) to lift every block.',
    );
  const { host, port } = config.health;
  const target = !host || host === '0.0.0.0' ? '127.0.0.1' : host === '::' ? '::1' : host;
  return `http://${target.includes(':') ? `[${target}]` : target}:${port}`;
}

/** Lines to print; throws with a sentence when the relay cannot be reached or refuses. */
export async function unblock(config: Pick<RelayConfig, 'health'>, request: UnblockRequest): Promise<string[]> {
  const base = healthBaseUrl(config);
  const call = async (path: string, init?: RequestInit) => {
    let response: Response;
    try {
      response = await fetch(`${base}${path}`, { ...init, signal: AbortSignal.timeout(10_000) });
    } catch (error) {
      throw new ConfigError(
        `The relay does not answer on ${base} (${(error as Error).message}): is it running with this configuration?`,
      );
    }
    const body = (await response.json().catch(() => ({}))) as Record<string, unknown>;
    if (!response.ok) throw new ConfigError(`The relay answered ${response.status}: ${String(body.reason ?? body.status ?? '')}`);
    return body;
  };
  if (request.kind === 'list') {
    const { blocked } = (await call('/logins/blocked')) as { blocked: BlockedAddress[] };
    if (blocked.length === 0) return ['No client address has failed logins.'];
    return [
      'address                                    failed logins   blocked for',
      ...blocked.map(
        (b) =>
          `${b.address.padEnd(42)} ${String(b.failures).padStart(13)}   ${b.blockedForSeconds > 0 ? `${b.blockedForSeconds} s` : '-'}`,
      ),
      '',
      'Lift one: npm run relay -- unblock <address>; all: npm run relay -- unblock --all',
    ];
  }
  const body = await call('/logins/unblock', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(request.kind === 'one' ? { address: request.address } : {}),
  });
  const count = Number(body.unblocked ?? 0);
  if (request.kind === 'all') return [`Lifted the failed logins of ${count} address(es).`];
  return [
    count > 0
      ? `Lifted the failed logins of ${String(body.address)}.`
      : `${String(body.address)} had no failed logins (list them with: npm run relay -- unblock).`,
  ];
}
