/**
 * Every refusal the relay gives a device, in one place. The person reading it is whoever set up a scanner or
 * an ERP system, often from its web page's "test" button: each text says what is wrong and what to change.
 * The enhanced status code is part of the text, as smtp-server sends it unchanged.
 */
export interface Reply {
  responseCode: number;
  message: string;
  /** Stable reason for logs. */
  reason: string;
}

const MB = 1024 * 1024;
const megabytes = (bytes: number) => `${Math.round((bytes / MB) * 10) / 10} MB`;
const list = (addresses: readonly string[]) =>
  addresses.length <= 3 ? addresses.join(', ') : `${addresses.slice(0, 3).join(', ')} and ${addresses.length - 3} more`;

export const REPLIES = {
  queued: (id: string) => `2.0.0 queued as ${id}`,

  authRequired: (secure = true): Reply => ({
    responseCode: 530,
    reason: 'auth_required',
    message: secure
      ? "5.7.0 Authentication required: log in with this device's user name and password"
      : "5.7.0 Authentication required: turn on STARTTLS (port 587) or SSL/TLS (port 465), then log in with this device's user name and password",
  }),
  tlsRequired: (): Reply => ({
    responseCode: 538,
    reason: 'tls_required',
    message: '5.7.11 Encryption required: use STARTTLS (or port 465) before logging in',
  }),
  loginFailed: (): Reply => ({
    responseCode: 535,
    reason: 'login_failed',
    message: '5.7.8 Authentication failed: wrong user name or password, or not allowed from this address',
  }),
  loginBlocked: (retryAfterMs: number): Reply => ({
    responseCode: 454,
    reason: 'login_blocked',
    message: `4.7.0 Too many failed logins from this address; try again in ${Math.max(1, Math.ceil(retryAfterMs / 60_000))} minute(s)`,
  }),
  networkNotAllowed: (): Reply => ({
    responseCode: 554,
    reason: 'network_not_allowed',
    message: '5.7.1 This port accepts connections only from configured networks; use port 587 with STARTTLS and a login',
  }),
  emptySender: (allowed: readonly string[]): Reply => ({
    responseCode: 550,
    reason: 'sender_not_allowed',
    message: `5.7.1 An empty sender (MAIL FROM:<>) is not allowed: set the device's sender address to ${list(allowed)}`,
  }),
  senderNotAllowed: (field: string, address: string, allowed: readonly string[]): Reply => ({
    responseCode: 550,
    reason: 'sender_not_allowed',
    message: `5.7.1 ${field} <${address}> is not allowed for this device; it may send as ${list(allowed)}`,
  }),
  noFrom: (allowed: readonly string[]): Reply => ({
    responseCode: 550,
    reason: 'sender_not_allowed',
    message: `5.6.0 The message has no From address; the device must set one of ${list(allowed)}`,
  }),
  displayNameAddress: (field: string, name: string): Reply => ({
    responseCode: 550,
    reason: 'sender_not_allowed',
    message: `5.7.1 The ${field} display name "${name.slice(0, 80)}" looks like another address; use a name without "@" (e.g. "Scanner 2nd floor")`,
  }),
  unknownAccount: (account: string): Reply => ({
    responseCode: 550,
    reason: 'unknown_account',
    message: `5.7.1 This device sends for account "${account}", which oauth-outbox does not have; fix "account" of the device in the relay's configuration, or add the account to MAIL_ACCOUNTS`,
  }),
  accountSenderNotAllowed: (field: string, address: string, account: string, allowed: readonly string[]): Reply => ({
    responseCode: 550,
    reason: 'sender_not_allowed',
    message: `5.7.1 ${field} <${address}> is not allowed for account "${account}" (it allows ${list(allowed)}); add it to the account's allowedFrom (in MAIL_ACCOUNTS or on the admin page), or set the device to send as one of those`,
  }),
  accountPaused: (account: string, until: string | undefined): Reply => ({
    responseCode: 451,
    reason: 'account_paused',
    message: `4.7.0 Account "${account}" is paused${until ? ` until ${until}` : ''} (see the oauth-outbox status page); nothing was queued, please try again later`,
  }),
  accountNeedsReauthorization: (account: string): Reply => ({
    responseCode: 451,
    reason: 'needs_reauthorization',
    message: `4.7.0 Account "${account}" is not authorized (not yet, or no longer): an administrator must authorize it on the oauth-outbox status page; nothing was queued, please try again later`,
  }),
  accountConfigError: (account: string): Reply => ({
    responseCode: 451,
    reason: 'configuration_error',
    message: `4.7.0 Account "${account}" has a configuration problem (see the oauth-outbox status page); nothing was queued, please try again later`,
  }),
  manyFromFields: (field: string, count: number): Reply => ({
    responseCode: 550,
    reason: 'invalid_message',
    message: `5.6.0 The message has ${count} ${field} header fields; only one is allowed`,
  }),
  headerTooLarge: (limit: number): Reply => ({
    responseCode: 552,
    reason: 'too_large',
    message: `5.3.4 The message header is larger than ${megabytes(limit)}`,
  }),
  declaredTooLarge: (declared: number, limit: number): Reply => ({
    responseCode: 552,
    reason: 'too_large',
    message: `5.3.4 Message too large: ${declared} bytes announced, this device may send at most ${limit} bytes (${megabytes(limit)})`,
  }),
  tooLarge: (received: number, limit: number): Reply => ({
    responseCode: 552,
    reason: 'too_large',
    message: `5.3.4 Message too large: ${received} bytes, this device may send at most ${limit} bytes (${megabytes(limit)}); attachments grow by a third when sent`,
  }),
  tooManyRecipients: (limit: number): Reply => ({
    responseCode: 452,
    reason: 'too_many_recipients',
    message: `4.5.3 Too many recipients: at most ${limit} per message; send the rest in another message`,
  }),
  /** Never sent (the device speaks TLS and cannot read it): the entry on the status page. */
  implicitTlsOnSmtpPort: (): Reply => ({
    responseCode: 500,
    reason: 'tls_on_smtp_port',
    message: '5.5.1 The device started TLS at once on a STARTTLS port: choose STARTTLS, or SSL/TLS on port 465',
  }),
  /** Never sent (the handshake failed): the entry on the status page. */
  tlsTooOld: (): Reply => ({
    responseCode: 500,
    reason: 'tls_too_old',
    message: '5.7.0 The device offers only TLS 1.0/1.1; use TLS 1.2 or later, or the plain port for old devices',
  }),
  storageUnavailable: (): Reply => ({
    responseCode: 451,
    reason: 'storage_unavailable',
    message: '4.3.0 The message could not be stored; nothing was queued, please try again later',
  }),
  shuttingDown: (): Reply => ({
    responseCode: 421,
    reason: 'shutting_down',
    message: '4.3.2 The relay is restarting; please try again in a moment',
  }),
} as const;

/** An Error carrying the reply, as smtp-server's callbacks expect. */
export function replyError(reply: Reply): Error & { responseCode: number } {
  return Object.assign(new Error(reply.message), { responseCode: reply.responseCode });
}
