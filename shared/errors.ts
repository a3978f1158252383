/**
 * Typed errors with a stable code. The ledger, the results queue, the admin page and the logs show the code
 * and the message, so the message is written for a person and never contains a secret.
 */
export type MessageErrorCode =
  | 'invalid_message'
  | 'unknown_account'
  | 'sender_not_allowed'
  | 'too_large'
  | 'attachment_missing'
  | 'recipient_rejected'
  | 'send_as_denied'
  | 'message_rejected'
  | 'delivery_unconfirmed';

export type AccountErrorCode =
  'needs_reauthorization' | 'config_error' | 'smtp_auth_disabled' | 'quota_exceeded' | 'not_authorized';

export type TransientErrorCode = 'transient' | 'throttled' | 'token_unavailable';

export type ErrorCode = MessageErrorCode | AccountErrorCode | TransientErrorCode | 'invalid_config';

export class OutboxError<Code extends ErrorCode = ErrorCode> extends Error {
  constructor(
    readonly code: Code,
    message: string,
    readonly details: { smtpReply?: string; retryAfterMs?: number; providerError?: string } = {},
  ) {
    super(message);
    this.name = 'OutboxError';
  }
}

/** A problem with this one message: failed permanently, never retried. */
export class MessageError extends OutboxError<MessageErrorCode> {
  constructor(code: MessageErrorCode, message: string, details: OutboxError['details'] = {}) {
    super(code, message, details);
    this.name = 'MessageError';
  }
}

/** A problem with the account: its messages wait (deferred) until an admin fixes it. */
export class AccountError extends OutboxError<AccountErrorCode> {
  constructor(code: AccountErrorCode, message: string, details: OutboxError['details'] = {}) {
    super(code, message, details);
    this.name = 'AccountError';
  }
}

/** Trouble that passes by itself: the message is retried later with backoff. */
export class TransientError extends OutboxError<TransientErrorCode> {
  constructor(code: TransientErrorCode, message: string, details: OutboxError['details'] = {}) {
    super(code, message, details);
    this.name = 'TransientError';
  }
}

/** The configuration (MAIL_ACCOUNTS) is invalid; `path` names the bad field. */
export class ConfigError extends OutboxError<'invalid_config'> {
  constructor(message: string) {
    super('invalid_config', message);
    this.name = 'ConfigError';
  }
}
