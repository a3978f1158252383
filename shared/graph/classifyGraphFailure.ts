import type { ReplyClass } from '../smtp/classifyReply';
import { GraphFailure } from './graphFailure';

/**
 * What a failed Graph sendMail means for the message, in the same terms as an SMTP reply (`ReplyClass`), matched on
 * the HTTP status and Graph's `error.code`, never on the message text alone. "May have been delivered" is what
 * SMTP's `afterData` is: `permanent` with code `delivery_unconfirmed`, so the message is never sent again blindly.
 * The rules are tried in order; the first that matches decides.
 */
interface Rule {
  /** Which failures, in words (the table test names its cases after these). */
  when: string;
  match: (failure: GraphFailure) => boolean;
  verdict: (failure: GraphFailure, said: string) => ReplyClass;
}

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;

const code = (...codes: string[]) => {
  const wanted = new Set(codes.map((c) => c.toLowerCase()));
  return (f: GraphFailure) => wanted.has((f.graphCode ?? '').toLowerCase());
};
const config = (reason: string): ReplyClass => ({ kind: 'account', code: 'config_error', reason, pauseMs: HOUR });

export const GRAPH_FAILURE_RULES: readonly Rule[] = [
  {
    when: 'our own token check refused the token before any request',
    match: (f) => f.kind === 'preflight',
    verdict: (f) => config(f.message),
  },
  {
    when: 'the connection could not be made',
    match: (f) => f.kind === 'not_sent',
    verdict: (_f, said) => ({ kind: 'transient', reason: `Could not reach Microsoft Graph (${said}).` }),
  },
  {
    when: 'no answer after the request was sent (timeout, reset)',
    match: (f) => f.kind === 'no_answer',
    verdict: (_f, said) => unconfirmed(said, 'gave no answer'),
  },
  {
    when: 'Graph throttles: 429 (ApplicationThrottled, MailboxConcurrency, CommandConcurrencyLimitReached) or 503',
    match: (f) => f.status === 429 || f.status === 503,
    verdict: (f, said) => ({
      kind: 'throttled',
      reason: `Microsoft Graph asks to slow down (${said}).`,
      retryAfterMs: f.retryAfterMs ?? (f.status === 429 ? MINUTE : 30_000),
    }),
  },
  {
    when: 'a server error after the request was sent: 500, 502, 504, any 5xx but 503 (a 504 can still deliver)',
    match: (f) => f.status !== undefined && f.status >= 500,
    verdict: (_f, said) => unconfirmed(said, 'failed after receiving the message'),
  },
  {
    when: 'invalid or expired token: 401 InvalidAuthenticationToken',
    match: (f) => f.status === 401 && !code('MailboxNotEnabledForRESTAPI')(f),
    verdict: (_f, said) => ({ kind: 'auth_rejected', reason: `Microsoft Graph refused the access token (${said}).` }),
  },
  {
    when: 'send-as denied: ErrorSendAsDenied',
    match: code('ErrorSendAsDenied'),
    verdict: (_f, said) => ({
      kind: 'permanent',
      code: 'send_as_denied',
      reason: `The mailbox may not send as this From address (${said}). Grant Send As rights on it, use an allowed address, and check that the From display name has no "@" in it.`,
    }),
  },
  {
    when: 'mailbox not enabled for REST: MailboxNotEnabledForRESTAPI',
    match: code('MailboxNotEnabledForRESTAPI', 'MailboxNotSupportedForRESTAPI'),
    verdict: (_f, said) =>
      config(
        `The sending mailbox cannot be used through Microsoft Graph: it is inactive, soft-deleted, has no Exchange Online licence, or is hosted on-premises (${said}). Use SMTP (transport "smtp") or a mailbox in Exchange Online.`,
      ),
  },
  {
    when: 'mailbox full: ErrorQuotaExceeded',
    match: code('ErrorQuotaExceeded', 'ErrorQuotaExceededOnDelete'),
    verdict: (_f, said) => ({
      kind: 'account',
      code: 'mailbox_full',
      reason: `The sending mailbox is full; Graph keeps a copy of sent mail in Sent Items (${said}). Free up space.`,
      pauseMs: HOUR,
    }),
  },
  {
    when: 'sending quota used up: ErrorExceededMessageLimit, ErrorSubmissionQuotaExceeded, ErrorMessageSubmissionBlocked',
    match: code('ErrorExceededMessageLimit', 'ErrorSubmissionQuotaExceeded', 'ErrorMessageSubmissionBlocked'),
    verdict: (_f, said) => ({
      kind: 'account',
      code: 'quota_exceeded',
      reason: `The mailbox may not send more for now: its sending quota is used up or Exchange blocked it from sending (${said}).`,
      pauseMs: HOUR,
    }),
  },
  {
    when: 'message too large: 413, ErrorMessageSizeExceeded, ErrorRequestEntityTooLarge',
    match: (f) => f.status === 413 || code('ErrorMessageSizeExceeded', 'ErrorRequestEntityTooLarge', 'RequestEntityTooLarge')(f),
    verdict: (_f, said) => ({
      kind: 'permanent',
      code: 'too_large',
      reason: `Microsoft Graph refused the message as too large (${said}). A sendMail request carries about 4 MB at most; send large messages by SMTP (transport "smtp" or "auto").`,
    }),
  },
  {
    when: 'recipient errors: ErrorInvalidRecipients, ErrorRecipientNotFound',
    match: code('ErrorInvalidRecipients', 'ErrorRecipientNotFound', 'ErrorInvalidEmailAddress'),
    verdict: (_f, said) => ({ kind: 'permanent', code: 'recipient_rejected', reason: `A recipient was refused (${said}).` }),
  },
  {
    when: 'MIME not valid base64: ErrorMimeContentInvalidBase64String',
    match: code('ErrorMimeContentInvalidBase64String', 'ErrorMimeContentConversionFailed'),
    verdict: (_f, said) => ({
      kind: 'permanent',
      code: 'message_rejected',
      reason: `Microsoft Graph could not read the MIME message (${said}). Check that it is a complete RFC 5322 message with CRLF line ends.`,
    }),
  },
  {
    when: 'access denied: 403 ErrorAccessDenied, Authorization_RequestDenied',
    match: (f) => f.status === 403 || code('ErrorAccessDenied', 'Authorization_RequestDenied', 'AccessDenied')(f),
    verdict: (_f, said) =>
      config(
        `Microsoft Graph denied access to the mailbox (${said}). Delegated: the signed-in user must have consented to Mail.Send (re-authorize the account). App-only: the app needs the Mail.Send application permission, and with RBAC for Applications a role assignment "Application Mail.Send" whose scope holds this mailbox (docs/provider-microsoft.md).`,
      ),
  },
  {
    when: 'unknown sending mailbox: 404 ErrorInvalidUser, ResourceNotFound',
    match: (f) => f.status === 404,
    verdict: (_f, said) =>
      config(
        `Microsoft Graph does not know the sending mailbox (${said}). Check the account's "user": it must be the mailbox's address in this tenant.`,
      ),
  },
  {
    when: 'other 4xx: the request was refused as it is',
    match: (f) => f.status !== undefined && f.status >= 400 && f.status < 500,
    verdict: (_f, said) => ({
      kind: 'permanent',
      code: 'message_rejected',
      reason: `Microsoft Graph refused the message (${said}).`,
    }),
  },
];

export function classifyGraphFailure(error: unknown): ReplyClass {
  if (!(error instanceof GraphFailure)) {
    const text = error instanceof Error ? error.message : String(error);
    return { kind: 'transient', reason: `Unexpected error while sending through Microsoft Graph: ${oneLine(text)}` };
  }
  const said = error.kind === 'http' ? `Graph answered ${oneLine(error.reply)}` : oneLine(error.reply);
  for (const rule of GRAPH_FAILURE_RULES) if (rule.match(error)) return rule.verdict(error, said);
  return { kind: 'transient', reason: `Microsoft Graph failed (${said}).` };
}

function unconfirmed(said: string, what: string): ReplyClass {
  return {
    kind: 'permanent',
    code: 'delivery_unconfirmed',
    reason: `Microsoft Graph ${what} (${said}); the message may have been delivered. It was not sent again, to avoid a duplicate. Enqueue it with a new id to send it anyway.`,
  };
}

function oneLine(text: string): string {
  return text.replace(/\s+/g, ' ').slice(0, 500);
}
