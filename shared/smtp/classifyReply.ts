/**
 * What an SMTP failure means for the message, matched on the reply code and the enhanced status code
 * (never on the free text alone, which providers change), with the real replies of Exchange Online and Gmail.
 */
export type ReplyClass =
  /** This message can never be sent as it is: failed permanently with the server's reply. */
  | {
      kind: 'permanent';
      code: 'recipient_rejected' | 'send_as_denied' | 'message_rejected' | 'too_large' | 'delivery_unconfirmed';
      reason: string;
    }
  /** Passing trouble: retried later with backoff, counted as an attempt. */
  | { kind: 'transient'; reason: string }
  /** The provider asks us to slow down: deferred, not counted as an attempt. */
  | { kind: 'throttled'; reason: string; retryAfterMs: number }
  /** The server refused our token: refresh once and retry once. */
  | { kind: 'auth_rejected'; reason: string }
  /** The account cannot send until something changes: every message of the account waits. */
  | {
      kind: 'account';
      code: 'smtp_auth_disabled' | 'quota_exceeded' | 'mailbox_full' | 'config_error';
      reason: string;
      pauseMs: number;
    };

export interface SmtpFailure {
  code?: string;
  responseCode?: number;
  response?: string;
  command?: string;
  message?: string;
  /** The code of the underlying system or TLS error, kept by nodemailer when it sets its own `code`. */
  originalCode?: string;
  /** Set by our XOAUTH2 login: the server did not list XOAUTH2, these are the mechanisms it listed. */
  offeredAuth?: string[];
  /** Set by the sender: the failure came after the whole message had gone to the server, without a reply. */
  afterData?: boolean;
}

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;

export function enhancedStatus(reply: string | undefined): string | undefined {
  return reply ? /\b([245]\.\d{1,3}\.\d{1,3})\b/.exec(reply)?.[1] : undefined;
}

export function classifySmtpFailure(error: SmtpFailure): ReplyClass {
  const reply = (error.response ?? '').trim();
  const status = enhancedStatus(reply) ?? '';
  const code = error.responseCode;
  const said = reply
    ? `the server replied "${oneLine(reply)}"`
    : `${error.code ?? 'error'}: ${oneLine(error.message ?? 'unknown error')}`;

  if ((code === undefined || code === 0) && !error.code) {
    return { kind: 'transient', reason: `Unexpected error while sending: ${oneLine(error.message ?? 'unknown error')}` };
  }
  const setup = sessionSetupFailure(error, code, said);
  if (setup) return setup;
  if ((code === undefined || code === 0) && error.afterData) {
    // The server may have accepted the message and the reply got lost: sending it again could deliver it twice.
    return {
      kind: 'permanent',
      code: 'delivery_unconfirmed',
      reason: `The SMTP server received the whole message but gave no reply (${said}); it may have been delivered. It was not sent again, to avoid a duplicate. Enqueue it with a new id to send it anyway.`,
    };
  }
  if (code === undefined || code === 0) {
    // No SMTP reply at all: connection refused/reset, DNS, TLS or a timeout.
    return { kind: 'transient', reason: `Could not talk to the SMTP server (${said}).` };
  }
  if (code === 535 || code === 534 || code === 530 || (error.code === 'EAUTH' && code >= 500)) {
    if (status === '5.7.139')
      return {
        kind: 'account',
        code: 'smtp_auth_disabled',
        reason: `SMTP AUTH is disabled for this tenant or mailbox (${said}). Enable it: Set-CASMailbox -Identity <mailbox> -SmtpClientAuthenticationDisabled $false, and check that security defaults do not block it.`,
        pauseMs: HOUR,
      };
    return { kind: 'auth_rejected', reason: `The SMTP server refused the OAuth token (${said}).` };
  }
  if (status === '5.5.127' || /token will expire soon/i.test(reply))
    return { kind: 'auth_rejected', reason: `The SMTP server refused a token close to expiry (${said}).` };
  if (status === '5.2.0' && /SubmissionQuotaExceeded/i.test(reply))
    return {
      kind: 'account',
      code: 'quota_exceeded',
      reason: `The mailbox's daily sending quota is used up (${said}).`,
      pauseMs: HOUR,
    };
  if (status === '5.4.5' || /daily user sending limit/i.test(reply))
    return {
      kind: 'account',
      code: 'quota_exceeded',
      reason: `The mailbox's daily sending limit is reached (${said}).`,
      pauseMs: HOUR,
    };
  if (status === '5.2.2' && code >= 500)
    return {
      kind: 'account',
      code: 'mailbox_full',
      reason: `The sending mailbox is full; SMTP submissions keep a copy in Sent Items (${said}).`,
      pauseMs: HOUR,
    };
  if (status === '5.2.252' || /SendAsDenied/i.test(reply) || status === '5.7.60')
    return {
      kind: 'permanent',
      code: 'send_as_denied',
      reason: `The account may not send as this From address (${said}). Grant Send As rights or use an allowed address.`,
    };
  if (code >= 400 && code < 500) {
    if (status === '4.3.2' || status.startsWith('4.7.') || status === '4.2.1' || code === 421)
      return { kind: 'throttled', reason: `The provider is throttling this mailbox (${said}).`, retryAfterMs: MINUTE };
    return { kind: 'transient', reason: `Temporary failure (${said}).` };
  }
  if (status.startsWith('5.1.') || (code === 550 && /recipient|RecipNotFound|does not exist|no such user/i.test(reply)))
    return { kind: 'permanent', code: 'recipient_rejected', reason: `A recipient was refused (${said}).` };
  if (status === '5.3.4' || code === 552)
    return { kind: 'permanent', code: 'too_large', reason: `The message is too large for the server (${said}).` };
  return { kind: 'permanent', code: 'message_rejected', reason: `The server refused the message (${said}).` };
}

/** Commands that set the session up, before any message: a refusal there is about the account's setup. */
const SETUP_COMMANDS = new Set(['CONN', 'EHLO', 'HELO', 'STARTTLS']);
const CERTIFICATE_CODES = /CERT|SELF_SIGNED|UNABLE_TO_(GET|VERIFY)|ALTNAME|HOSTNAME_MISMATCH/;
const CERTIFICATE_TEXT = /certificate|self[- ]signed|altnames|Hostname\/IP does not match/i;
const TLS_MODE_MISMATCH =
  /wrong version number|unknown protocol|unsupported protocol|no protocols available|packet length too long|http request/i;

/**
 * Failures while the session is set up that no retry and no new token can fix, and that must not fail messages:
 * the server does not offer STARTTLS or XOAUTH2, its certificate is not trusted, it speaks another security
 * mode, or it refuses the greeting or EHLO. Whatever the cause (a wrong setting, a server change, or someone
 * in between stripping STARTTLS), the account waits for an admin and its messages stay queued. The token is
 * never sent in any of these cases: nodemailer stops before AUTH, and our login checks the offered mechanisms.
 * Everything else that goes wrong before a reply (DNS, refused or reset connections, timeouts, a connection
 * closed during the TLS handshake) is passing trouble: transient.
 */
function sessionSetupFailure(error: SmtpFailure, code: number | undefined, said: string): ReplyClass | undefined {
  const config = (reason: string): ReplyClass => ({ kind: 'account', code: 'config_error', reason, pauseMs: HOUR });
  if (error.offeredAuth) {
    const offered = error.offeredAuth.length ? error.offeredAuth.join(', ') : 'no AUTH mechanism at all';
    return config(
      `The SMTP server does not offer AUTH XOAUTH2 (it offers ${offered}), so the token was not sent. Check the account's smtp host and port (the provider's OAuth submission endpoint) and that the server has OAuth for SMTP enabled.`,
    );
  }
  if (error.code === 'EAUTH' && code !== undefined && [500, 502, 504].includes(code)) {
    return config(
      `The SMTP server advertised XOAUTH2 but did not accept the AUTH XOAUTH2 command (${said}). A new token cannot fix this: check the server's OAuth setup.`,
    );
  }
  if (code === 530 && /STARTTLS/i.test(error.response ?? '')) {
    // "530 5.7.0 Must issue a STARTTLS command first": the session is in clear text, so our login did not run.
    return config(
      `The SMTP server requires STARTTLS before authentication (${said}), so the token was not sent. Set the account's smtp.security to 'starttls' (port 587) or 'tls' (port 465).`,
    );
  }
  if (error.code === 'ETLS' && error.command === 'STARTTLS' && code !== undefined && code >= 500) {
    return config(
      `The SMTP server did not offer STARTTLS (${said}), so the token was not sent. Check the account's smtp host, port and security; if the server does offer STARTTLS, something between this app and the server removes it.`,
    );
  }
  if (
    !code &&
    (CERTIFICATE_CODES.test(error.originalCode ?? '') || (isTls(error) && CERTIFICATE_TEXT.test(error.message ?? '')))
  ) {
    return config(
      `The SMTP server's TLS certificate is not trusted (${said}), so the token was not sent. Check that smtp.host is the name on the certificate, and smtp.caFile for a private CA.`,
    );
  }
  if (!code && isTls(error) && TLS_MODE_MISMATCH.test(error.message ?? '')) {
    return config(
      `TLS could not be set up with the SMTP server (${said}): the port probably expects another security mode. Check smtp.security ('tls' for port 465, 'starttls' for 587).`,
    );
  }
  if (code !== undefined && code >= 500 && SETUP_COMMANDS.has(error.command ?? '')) {
    return config(`The SMTP server refused the session before any message (${said}).`);
  }
  return undefined;
}

function isTls(error: SmtpFailure): boolean {
  return error.code === 'ETLS' || error.code === 'ESOCKET' || error.code === 'ECONNECTION';
}

function oneLine(text: string): string {
  return text.replace(/\s+/g, ' ').slice(0, 500);
}
