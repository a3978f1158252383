import type { Account } from '../config/account';
import type { ConnectionSlots } from '../limits/connectionSlots';
import { LanePool, type PooledLane } from '../limits/lanePool';
import { graphTokenProblem } from '../oauth/graphToken';
import type { SentInfo } from '../smtp/accountSender';
import { GraphFailure } from './graphFailure';
import type { GraphRequest } from './graphRequest';

export interface GraphToken {
  accessToken: string;
  /** Epoch milliseconds. */
  expiresAt: number;
  scope?: string;
}

/** A held request slot of the mailbox: send on it (once, or again after a token refresh), then release it. */
export interface GraphLane {
  send(request: GraphRequest, token: GraphToken): Promise<SentInfo>;
  release(): void;
}

export interface GraphSenderOptions {
  /** Default: the account's `graph.baseUrl` (https://graph.microsoft.com). */
  baseUrl?: string;
  /** The whole request, answer included. */
  timeoutMs: number;
  /** A slot stays held this long after its last request, so a burst does not pay a table round trip per message. */
  idleMs: number;
}

export const DEFAULT_GRAPH_TIMEOUT_MS = 60_000;

/**
 * Microsoft Graph sendMail for one account. Graph allows 4 concurrent requests per app and mailbox across all
 * instances: each request runs on a lane that holds one of the mailbox's cross-instance slots (ConnectionSlots,
 * limit `graph.concurrentRequests`), kept for `idleMs` after use. Uses Node's fetch (undici, keep-alive).
 * The token is checked (audience, Mail.Send) before its first request; failures are thrown as GraphFailure.
 */
export class GraphSender {
  private readonly lanes: LanePool<PooledLane>;
  private readonly url: string;
  /** The last token that passed the preflight: each new token is checked once. */
  private checkedToken: string | undefined;
  /** Tokens Graph refused (401): requests already waiting for a lane do not present them again. */
  private readonly refusedTokens = new Set<string>();

  constructor(
    private readonly account: Account,
    slots: ConnectionSlots,
    private readonly options: GraphSenderOptions,
  ) {
    const baseUrl = (options.baseUrl ?? account.graph?.baseUrl ?? 'https://graph.microsoft.com').replace(/\/+$/, '');
    this.url = `${baseUrl}/v1.0/users/${encodeURIComponent(account.user)}/sendMail`;
    this.lanes = new LanePool(slots, {
      limit: () => this.account.graph?.concurrentRequests ?? 4,
      idleMs: options.idleMs,
      create: (slot) => ({ slot, busy: true }),
    });
  }

  /** A lane within `maxWaitMs`, or undefined when all the mailbox's slots stay taken (defer the message). */
  async acquire(maxWaitMs: number): Promise<GraphLane | undefined> {
    const lane = await this.lanes.acquire(Date.now() + maxWaitMs);
    if (!lane) return undefined;
    let released = false;
    return {
      send: (request, token) => {
        if (released) throw new Error('GraphLane.send after release');
        return this.post(request, token);
      },
      release: () => {
        if (released) return;
        released = true;
        this.lanes.release(lane);
      },
    };
  }

  /** Gives back every slot (shutdown, tests). */
  close(): Promise<void> {
    return this.lanes.close();
  }

  get heldSlots(): number {
    return this.lanes.size;
  }

  private async post(request: GraphRequest, token: GraphToken): Promise<SentInfo> {
    if (this.refusedTokens.has(token.accessToken)) {
      throw new GraphFailure('Graph refused this access token moments ago; it was not sent again.', {
        kind: 'http',
        status: 401,
        graphCode: 'InvalidAuthenticationToken',
        graphMessage: 'Refused moments ago on another request; not presented again.',
        clientRequestId: request.clientRequestId,
        maybeDelivered: false,
      });
    }
    if (this.checkedToken !== token.accessToken) {
      const problem = graphTokenProblem(this.account, token);
      if (problem) throw new GraphFailure(problem, { kind: 'preflight', maybeDelivered: false });
      this.checkedToken = token.accessToken;
    }
    let response: Response;
    try {
      response = await fetch(this.url, {
        method: 'POST',
        headers: {
          authorization: `Bearer ${token.accessToken}`,
          'content-type': request.contentType,
          'client-request-id': request.clientRequestId,
          'return-client-request-id': 'true',
        },
        body: request.body,
        signal: AbortSignal.timeout(this.options.timeoutMs),
      });
    } catch (error) {
      throw noAnswer(error, request.clientRequestId, this.options.timeoutMs);
    }
    const requestId = response.headers.get('request-id') ?? undefined;
    const clientRequestId = response.headers.get('client-request-id') ?? request.clientRequestId;
    const ids = `${requestId ? ` request-id=${requestId}` : ''} client-request-id=${clientRequestId}`;
    if (response.status === 202) {
      // The message is Graph's now, whatever happens to the rest of the answer.
      await response.arrayBuffer().catch(() => undefined);
      return { response: `202 Accepted${ids}`, accepted: [...request.recipients], rejected: [] };
    }
    const text = await response.text().catch(() => '');
    const error = graphError(text);
    const status = response.status;
    if (status === 401 && error.code !== 'MailboxNotEnabledForRESTAPI') {
      if (this.refusedTokens.size >= 8) this.refusedTokens.clear();
      this.refusedTokens.add(token.accessToken);
    }
    const retryAfterMs = parseRetryAfter(response.headers.get('retry-after'));
    throw new GraphFailure(`Graph answered ${status}${error.code ? ` ${error.code}` : ''}`, {
      kind: 'http',
      status,
      ...(error.code ? { graphCode: error.code } : {}),
      ...(error.message ? { graphMessage: error.message } : {}),
      ...(retryAfterMs !== undefined ? { retryAfterMs } : {}),
      ...(requestId ? { requestId } : {}),
      clientRequestId,
      // 503 is Graph's "busy, come back" (with Retry-After); any other 5xx came after the message was received.
      maybeDelivered: status >= 500 && status !== 503,
    });
  }
}

/**
 * The mailbox's Graph slots in table `leases`: per app and mailbox, as Graph counts them, and apart from the SMTP
 * connection slots (mailboxKey in delivery/senderPool.ts), made safe for a table key.
 */
export function graphSlotsKey(account: Account): string {
  const key = `graph:${account.tenantId ?? ''}:${account.clientId}:${account.user.toLowerCase()}`;
  return key.replace(/[%/\\#?\x00-\x1f\x7f]/g, (c) => `%${c.charCodeAt(0).toString(16).padStart(2, '0').toUpperCase()}`);
}

/** Nothing ever left: the connection could not be made. Anything else may have reached Graph. */
const NOT_SENT_CODES = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'UND_ERR_CONNECT_TIMEOUT',
  'CERT_HAS_EXPIRED',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'ERR_TLS_CERT_ALTNAME_INVALID',
]);

function noAnswer(error: unknown, clientRequestId: string, timeoutMs: number): GraphFailure {
  const cause = (error as { cause?: { code?: string; message?: string } }).cause;
  const name = (error as { name?: string }).name;
  if (name === 'TimeoutError' || name === 'AbortError') {
    return new GraphFailure(`no answer from Microsoft Graph within ${timeoutMs / 1000} s`, {
      kind: 'no_answer',
      errorCode: 'TimeoutError',
      clientRequestId,
      maybeDelivered: true,
    });
  }
  const code = cause?.code ?? (error as { code?: string }).code ?? 'error';
  const detail = (cause?.message ?? (error as Error).message ?? 'unknown error').slice(0, 200);
  const notSent = NOT_SENT_CODES.has(code);
  return new GraphFailure(`${code}: ${detail}`, {
    kind: notSent ? 'not_sent' : 'no_answer',
    errorCode: code,
    clientRequestId,
    maybeDelivered: !notSent,
  });
}

/** Graph's error body: `{"error": {"code": "…", "message": "…"}}`; anything else yields nothing. */
function graphError(text: string): { code?: string; message?: string } {
  try {
    const parsed = JSON.parse(text) as { error?: { code?: unknown; message?: unknown } };
    const code = typeof parsed.error?.code === 'string' ? parsed.error.code.slice(0, 100) : undefined;
    const message = typeof parsed.error?.message === 'string' ? parsed.error.message.slice(0, 300) : undefined;
    return { ...(code ? { code } : {}), ...(message ? { message } : {}) };
  } catch {
    return {};
  }
}

/** `Retry-After`: delay seconds or an HTTP date; milliseconds, or undefined when absent or unreadable. */
export function parseRetryAfter(value: string | null, now: number = Date.now()): number | undefined {
  if (!value) return undefined;
  const trimmed = value.trim();
  if (/^\d+$/.test(trimmed)) return Number(trimmed) * 1000;
  const at = Date.parse(trimmed);
  return Number.isFinite(at) ? Math.max(0, at - now) : undefined;
}
