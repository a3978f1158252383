/**
 * Every `code` a message can end with in the ledger (`deliveries`) and the result event (`mail-results`):
 * the public list of result codes (README "Outcome codes" says what each means).
 */

/** Sent, but the server refused some recipients (their addresses are in the reason). */
export type SentCode = 'partially_rejected';

/** Failed for good: the message is not retried. */
export type FailedCode =
  | 'invalid_message'
  | 'unknown_account'
  | 'sender_not_allowed'
  | 'too_large'
  | 'attachment_missing'
  | 'recipient_rejected'
  | 'send_as_denied'
  | 'message_rejected'
  | 'delivery_unconfirmed'
  | 'expired'
  | 'gave_up';

/** Still queued: the message comes back after `nextAttemptAt`. */
export type DeferredCode =
  | 'in_progress'
  | 'transient'
  | 'throttled'
  | 'connection_limit'
  | 'rate_limited'
  | 'token_unavailable'
  | 'not_authorized'
  | 'needs_reauthorization'
  | 'config_error'
  | 'smtp_auth_disabled'
  | 'quota_exceeded'
  | 'mailbox_full'
  | 'paused';

export type OutcomeCode = SentCode | FailedCode | DeferredCode;
