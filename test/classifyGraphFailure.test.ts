/**
 * The Graph failure table: each case is what Microsoft Graph answers (status, error body as published in issue
 * trackers and Microsoft Q&A, Retry-After) or what the transport sees (timeout, reset, refused connection), and
 * what it must mean for the message. Every rule of the table is exercised by at least one case.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { ReplyClass } from '../shared/smtp/classifyReply';
import { classifyGraphFailure, GRAPH_FAILURE_RULES } from '../shared/graph/classifyGraphFailure';
import { clientRequestIdOf } from '../shared/graph/clientRequestId';
import { GraphFailure, type GraphFailureDetails } from '../shared/graph/graphFailure';
import { parseRetryAfter } from '../shared/graph/graphSender';

const http = (status: number, code?: string, message?: string, extra: Partial<GraphFailureDetails> = {}) =>
  new GraphFailure(`Graph answered ${status}`, {
    kind: 'http',
    status,
    ...(code ? { graphCode: code } : {}),
    ...(message ? { graphMessage: message } : {}),
    requestId: '5b0c8a52-6f0e-4f5e-a4f7-2b2d0f6a1c11',
    clientRequestId: clientRequestIdOf('m-1'),
    maybeDelivered: status >= 500 && status !== 503,
    ...extra,
  });

type Expected = { kind: ReplyClass['kind']; code?: string; retryAfterMs?: number; reason: RegExp };

const CASES: Array<{ name: string; failure: unknown; expected: Expected }> = [
  {
    name: 'preflight: the token lacks Mail.Send',
    failure: new GraphFailure('Account "a": the Graph token does not carry the delegated permission Mail.Send', {
      kind: 'preflight',
      maybeDelivered: false,
    }),
    expected: { kind: 'account', code: 'config_error', reason: /does not carry the delegated permission Mail\.Send/ },
  },
  {
    name: 'connection refused',
    failure: new GraphFailure('ECONNREFUSED: connect ECONNREFUSED 127.0.0.1:9', {
      kind: 'not_sent',
      errorCode: 'ECONNREFUSED',
      maybeDelivered: false,
    }),
    expected: { kind: 'transient', reason: /Could not reach Microsoft Graph \(ECONNREFUSED/ },
  },
  {
    name: 'timeout after sending',
    failure: new GraphFailure('no answer from Microsoft Graph within 60 s', {
      kind: 'no_answer',
      errorCode: 'TimeoutError',
      maybeDelivered: true,
    }),
    expected: { kind: 'permanent', code: 'delivery_unconfirmed', reason: /may have been delivered.*new id/ },
  },
  {
    name: 'connection reset after sending',
    failure: new GraphFailure('UND_ERR_SOCKET: other side closed', {
      kind: 'no_answer',
      errorCode: 'UND_ERR_SOCKET',
      maybeDelivered: true,
    }),
    expected: { kind: 'permanent', code: 'delivery_unconfirmed', reason: /gave no answer/ },
  },
  {
    name: '429 ApplicationThrottled with Retry-After',
    failure: http(429, 'ApplicationThrottled', 'Application is over its MailboxConcurrency limit.', { retryAfterMs: 12_000 }),
    expected: { kind: 'throttled', retryAfterMs: 12_000, reason: /slow down.*ApplicationThrottled/ },
  },
  {
    name: '429 without Retry-After',
    failure: http(429, 'CommandConcurrencyLimitReached'),
    expected: { kind: 'throttled', retryAfterMs: 60_000, reason: /CommandConcurrencyLimitReached/ },
  },
  {
    name: '503 ErrorServerBusy',
    failure: http(503, 'ErrorServerBusy', 'The server is busy. Try again later.', { retryAfterMs: 5_000 }),
    expected: { kind: 'throttled', retryAfterMs: 5_000, reason: /ErrorServerBusy/ },
  },
  {
    name: '504 after the request was sent',
    failure: http(504, 'UnknownError'),
    expected: {
      kind: 'permanent',
      code: 'delivery_unconfirmed',
      reason: /failed after receiving the message.*may have been delivered/,
    },
  },
  {
    name: '500 ErrorInternalServerError',
    failure: http(500, 'ErrorInternalServerError', 'An internal server error occurred. The operation failed.'),
    expected: { kind: 'permanent', code: 'delivery_unconfirmed', reason: /ErrorInternalServerError/ },
  },
  {
    name: '401 InvalidAuthenticationToken (expired)',
    failure: http(401, 'InvalidAuthenticationToken', 'Lifetime validation failed, the token is expired.'),
    expected: { kind: 'auth_rejected', reason: /refused the access token.*token is expired/ },
  },
  {
    name: '401 InvalidAuthenticationToken (empty)',
    failure: http(401, 'InvalidAuthenticationToken', 'Access token is empty.'),
    expected: { kind: 'auth_rejected', reason: /Access token is empty/ },
  },
  {
    name: '403 ErrorSendAsDenied',
    failure: http(
      403,
      'ErrorSendAsDenied',
      'The user account which was used to submit this request does not have the right to send mail on behalf of the specified sending account., Cannot submit message.',
    ),
    expected: { kind: 'permanent', code: 'send_as_denied', reason: /Send As rights.*display name/ },
  },
  {
    name: '404 MailboxNotEnabledForRESTAPI',
    failure: http(404, 'MailboxNotEnabledForRESTAPI', 'The mailbox is either inactive, soft-deleted, or is hosted on-premise.'),
    expected: { kind: 'account', code: 'config_error', reason: /cannot be used through Microsoft Graph.*on-premises/ },
  },
  {
    name: '401 MailboxNotEnabledForRESTAPI is about the mailbox, not the token',
    failure: http(401, 'MailboxNotEnabledForRESTAPI', 'REST API is not yet supported for this mailbox.'),
    expected: { kind: 'account', code: 'config_error', reason: /cannot be used through Microsoft Graph/ },
  },
  {
    name: '403 ErrorAccessDenied',
    failure: http(403, 'ErrorAccessDenied', 'Access is denied. Check credentials and try again.'),
    expected: { kind: 'account', code: 'config_error', reason: /denied access.*Mail\.Send.*RBAC for Applications/ },
  },
  {
    name: '403 Authorization_RequestDenied',
    failure: http(403, 'Authorization_RequestDenied', 'Insufficient privileges to complete the operation.'),
    expected: { kind: 'account', code: 'config_error', reason: /denied access/ },
  },
  {
    name: '404 ErrorInvalidUser',
    failure: http(404, 'ErrorInvalidUser', "The requested user 'nobody@contoso.com' is invalid."),
    expected: { kind: 'account', code: 'config_error', reason: /does not know the sending mailbox/ },
  },
  {
    name: '413 ErrorMessageSizeExceeded',
    failure: http(413, 'ErrorMessageSizeExceeded', 'The message exceeds the maximum supported size.'),
    expected: { kind: 'permanent', code: 'too_large', reason: /about 4 MB.*SMTP/ },
  },
  {
    name: '400 ErrorMessageSizeExceeded',
    failure: http(400, 'ErrorMessageSizeExceeded'),
    expected: { kind: 'permanent', code: 'too_large', reason: /too large/ },
  },
  {
    name: '413 ErrorQuotaExceeded: the code (mailbox full) decides, not the status',
    failure: http(413, 'ErrorQuotaExceeded', 'The mailbox has exceeded maximum mailbox size.'),
    expected: { kind: 'account', code: 'mailbox_full', reason: /mailbox is full/ },
  },
  {
    name: '400 ErrorQuotaExceeded: the mailbox is full',
    failure: http(400, 'ErrorQuotaExceeded', 'Would exceed storage quota.'),
    expected: { kind: 'account', code: 'mailbox_full', reason: /mailbox is full.*Sent Items/ },
  },
  {
    name: '403 ErrorExceededMessageLimit is not an access problem',
    failure: http(403, 'ErrorExceededMessageLimit', 'Message rate limit exceeded.'),
    expected: { kind: 'account', code: 'quota_exceeded', reason: /sending quota/ },
  },
  {
    name: '400 ErrorInvalidRecipients',
    failure: http(400, 'ErrorInvalidRecipients', 'At least one recipient is not valid., Recipient is missing.'),
    expected: { kind: 'permanent', code: 'recipient_rejected', reason: /recipient was refused/ },
  },
  {
    name: '400 ErrorMimeContentInvalidBase64String',
    failure: http(400, 'ErrorMimeContentInvalidBase64String', 'Invalid base64 string for MIME content.'),
    expected: { kind: 'permanent', code: 'message_rejected', reason: /could not read the MIME message.*CRLF/ },
  },
  {
    name: '400 InvalidInternetMessageHeader',
    failure: http(
      400,
      'InvalidInternetMessageHeader',
      "The internet message header name 'Importance' should start with 'x-' or 'X-'.",
    ),
    expected: { kind: 'permanent', code: 'message_rejected', reason: /refused the message/ },
  },
  {
    name: 'not a GraphFailure at all',
    failure: new TypeError('boom'),
    expected: { kind: 'transient', reason: /Unexpected error.*boom/ },
  },
];

for (const { name, failure, expected } of CASES) {
  test(`Graph: ${name} → ${expected.kind}${expected.code ? ` ${expected.code}` : ''}`, () => {
    const verdict = classifyGraphFailure(failure);
    assert.equal(verdict.kind, expected.kind);
    if (expected.code) assert.equal('code' in verdict ? verdict.code : undefined, expected.code);
    if (expected.retryAfterMs !== undefined)
      assert.equal(verdict.kind === 'throttled' ? verdict.retryAfterMs : undefined, expected.retryAfterMs);
    assert.match(verdict.reason, expected.reason);
    if (verdict.kind === 'account') assert.ok(verdict.pauseMs > 0);
  });
}

test('every rule of the table is decided by at least one case above', () => {
  const used = new Set(
    CASES.flatMap(({ failure }) =>
      failure instanceof GraphFailure ? [GRAPH_FAILURE_RULES.find((rule) => rule.match(failure))?.when] : [],
    ),
  );
  assert.deepEqual(
    GRAPH_FAILURE_RULES.map((rule) => rule.when).filter((when) => !used.has(when)),
    [],
  );
});

test('the reply kept for the ledger has the status, the code, the message and both request ids', () => {
  const failure = http(403, 'ErrorSendAsDenied', 'Cannot submit message.');
  assert.equal(
    failure.reply,
    `403 ErrorSendAsDenied: Cannot submit message. request-id=5b0c8a52-6f0e-4f5e-a4f7-2b2d0f6a1c11 client-request-id=${clientRequestIdOf('m-1')}`,
  );
});

test('client-request-id: a UUID (version 5) of the message id, the same every time, different per message', () => {
  const id = clientRequestIdOf('invoice-2026-000123');
  assert.match(id, /^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  assert.equal(clientRequestIdOf('invoice-2026-000123'), id);
  assert.notEqual(clientRequestIdOf('invoice-2026-000124'), id);
});

test('Retry-After: seconds or an HTTP date', () => {
  const now = Date.parse('2026-12-07T12:00:00Z');
  assert.equal(parseRetryAfter('30', now), 30_000);
  assert.equal(parseRetryAfter('Mon, 07 Dec 2026 12:00:45 GMT', now), 45_000);
  assert.equal(parseRetryAfter('soon', now), undefined);
  assert.equal(parseRetryAfter(null, now), undefined);
});
