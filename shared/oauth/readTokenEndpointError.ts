import * as client from 'openid-client';

/** What a failed token endpoint request says, before any decision: see `classifyTokenEndpointError`. */
export interface TokenEndpointErrorFacts {
  /** The OAuth `error` of the answer. */
  error?: string;
  /** HTTP status of the answer, when there was one. */
  status?: number;
  /** Microsoft AADSTS codes, in the order the provider gave them. */
  codes: number[];
  /** No answer at all. */
  network?: 'network_error' | 'timeout';
  /** The transport's error code, e.g. `ECONNREFUSED`. */
  networkDetail?: string;
}

/**
 * Reads what was thrown by a token endpoint request (or discovery), in this order:
 * 1. openid-client's errors, told apart with `instanceof` on its exported classes: `ResponseBodyError` (the OAuth
 *    error body and HTTP status), `WWWAuthenticateChallengeError` (the `error` of a challenge),
 *    `AuthorizationResponseError`, and `ClientError` by its stable `code`. openid-client wraps every other failure
 *    (oauth4webapi's, the runtime's) in a `ClientError` whose `cause` is read in turn.
 * 2. Transport failures of fetch and Node, which have no class to test: by their documented `name` and `code`.
 * 3. A token endpoint body given as a plain object (`{ error, error_description, error_codes, status? }`).
 * Anything else yields no facts, which the classifier reads as "not an OAuth response".
 */
export function readTokenEndpointError(error: unknown): TokenEndpointErrorFacts {
  return read(error, 0);
}

/** AADSTS codes in an error description (authorization responses and older token endpoints carry no `error_codes`). */
export function aadstsCodes(description: string | null | undefined): number[] {
  if (!description) return [];
  return [...description.matchAll(/\bAADSTS(\d{4,8})\b/g)].map((m) => Number(m[1]));
}

/** ClientError codes for an answer that is not an OAuth response; the `cause` is the HTTP Response. */
const NOT_AN_OAUTH_RESPONSE = new Set(['OAUTH_RESPONSE_IS_NOT_CONFORM', 'OAUTH_RESPONSE_IS_NOT_JSON']);

/** ClientError codes for a request abandoned by its timeout or an abort signal. */
const GAVE_UP = new Set(['OAUTH_TIMEOUT', 'OAUTH_ABORT']);

const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EPIPE',
  'UND_ERR_SOCKET',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
  'CERT_HAS_EXPIRED',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
]);

function read(error: unknown, depth: number): TokenEndpointErrorFacts {
  if (error === null || typeof error !== 'object' || depth > 4) return { codes: [] };

  if (error instanceof client.ResponseBodyError) return fromBody(error.cause, error.status);
  if (error instanceof client.WWWAuthenticateChallengeError) {
    const oauthError = error.cause.map((c) => c.parameters.error).find((value) => typeof value === 'string');
    return { codes: [], ...(oauthError !== undefined ? { error: oauthError } : {}), status: error.status };
  }
  if (error instanceof client.AuthorizationResponseError) {
    return fromBody({ error: error.error, error_description: error.error_description }, undefined);
  }
  if (error instanceof client.ClientError) {
    if (error.code !== undefined && GAVE_UP.has(error.code)) return { codes: [], network: 'timeout' };
    if (error.code !== undefined && NOT_AN_OAUTH_RESPONSE.has(error.code) && error.cause instanceof Response) {
      return { codes: [], status: error.cause.status };
    }
    return read(error.cause, depth + 1);
  }

  const transport = transportFailure(error);
  if (transport) return transport;
  // fetch() failures: TypeError('fetch failed', { cause: { code: 'ECONNREFUSED' } })
  if (error instanceof TypeError && /fetch failed|network/i.test(error.message)) {
    const inner = read(error.cause, depth + 1);
    return inner.network ? inner : { codes: [], network: 'network_error' };
  }

  const e = error as Record<string, unknown>;
  if (typeof e.error === 'string') return fromBody(e, typeof e.status === 'number' ? e.status : undefined);
  if (e.cause !== undefined) return read(e.cause, depth + 1);
  return { codes: [] };
}

/** Timeouts and aborts (DOMException names, undici's `*_TIMEOUT` codes) and Node's socket, DNS and TLS failures. */
function transportFailure(error: object): TokenEndpointErrorFacts | undefined {
  const { name, code } = error as { name?: unknown; code?: unknown };
  if (name === 'TimeoutError' || name === 'AbortError' || (typeof code === 'string' && code.endsWith('_TIMEOUT'))) {
    return { codes: [], network: 'timeout' };
  }
  if (typeof code === 'string' && NETWORK_CODES.has(code)) return { codes: [], network: 'network_error', networkDetail: code };
  return undefined;
}

function fromBody(body: Record<string, unknown>, status: number | undefined): TokenEndpointErrorFacts {
  const codes: number[] = [];
  if (Array.isArray(body.error_codes)) {
    for (const c of body.error_codes) if (typeof c === 'number' && Number.isInteger(c)) codes.push(c);
  }
  // Older endpoints and authorization responses carry the code only in the description: read the number, not the words.
  if (codes.length === 0 && typeof body.error_description === 'string') codes.push(...aadstsCodes(body.error_description));
  return {
    codes,
    ...(typeof body.error === 'string' ? { error: body.error } : {}),
    ...(status !== undefined ? { status } : {}),
  };
}
