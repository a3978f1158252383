/**
 * Why a Graph sendMail request did not end in `202 Accepted`, as `GraphLane.send` throws it. `classifyGraphFailure`
 * turns it into what it means for the message. Never holds the token or the message.
 */
export type GraphFailureKind =
  /** Graph answered with an error status. */
  | 'http'
  /** No answer in time, or the connection broke after the request went out. */
  | 'no_answer'
  /** The connection could not be made (refused, DNS, TLS): the request never left. */
  | 'not_sent'
  /** Our check of the token before the first request (audience, Mail.Send): nothing was sent. */
  | 'preflight';

export interface GraphFailureDetails {
  kind: GraphFailureKind;
  /** HTTP status, when Graph answered. */
  status?: number;
  /** Graph's `error.code` (`ErrorSendAsDenied`, `InvalidAuthenticationToken`, ...). */
  graphCode?: string;
  /** Graph's `error.message`, shortened. */
  graphMessage?: string;
  /** From the `Retry-After` header (seconds or an HTTP date), in milliseconds. */
  retryAfterMs?: number;
  requestId?: string;
  clientRequestId?: string;
  /**
   * The request may have been delivered although no `202` came back: a timeout or a broken connection after the
   * request was sent, or a `500`/`502`/`504` (Graph can deliver behind a `504`). Such a message must not be sent
   * again blindly: Graph has no idempotency key.
   */
  maybeDelivered: boolean;
  /** The system error code below a `no_answer` or `not_sent` (ECONNRESET, UND_ERR_SOCKET, TimeoutError, ...). */
  errorCode?: string;
}

export class GraphFailure extends Error {
  readonly kind: GraphFailureKind;
  readonly status: number | undefined;
  readonly graphCode: string | undefined;
  readonly graphMessage: string | undefined;
  readonly retryAfterMs: number | undefined;
  readonly requestId: string | undefined;
  readonly clientRequestId: string | undefined;
  readonly maybeDelivered: boolean;
  readonly errorCode: string | undefined;

  constructor(message: string, details: GraphFailureDetails) {
    super(message);
    this.name = 'GraphFailure';
    this.kind = details.kind;
    this.status = details.status;
    this.graphCode = details.graphCode;
    this.graphMessage = details.graphMessage;
    this.retryAfterMs = details.retryAfterMs;
    this.requestId = details.requestId;
    this.clientRequestId = details.clientRequestId;
    this.maybeDelivered = details.maybeDelivered;
    this.errorCode = details.errorCode;
  }

  /** What Graph said, for the ledger's reply column: `403 ErrorSendAsDenied: … request-id=…`. */
  get reply(): string {
    const parts: string[] = [];
    if (this.status !== undefined) parts.push(String(this.status));
    if (this.graphCode) parts.push(this.graphMessage ? `${this.graphCode}: ${this.graphMessage}` : this.graphCode);
    else if (this.status === undefined) parts.push(this.message);
    if (this.requestId) parts.push(`request-id=${this.requestId}`);
    if (this.clientRequestId) parts.push(`client-request-id=${this.clientRequestId}`);
    return parts.join(' ');
  }
}
