/**
 * Every `code` a message can end with in the ledger (`deliveries`) and the result event (`mail-results`), with
 * what it means in a sentence: the public list (README "Outcome codes" shows the same table).
 */
export const OUTCOME_CODES = {
  partially_rejected: { status: 'sent', meaning: 'Sent, but the server refused some recipients (listed in the reason).' },

  invalid_message: { status: 'failed', meaning: 'The queue message is not valid JSON of schema v1; the reason names the field.' },
  unknown_account: { status: 'failed', meaning: 'There is no such account, or no default account.' },
  sender_not_allowed: { status: 'failed', meaning: 'The From address is not allowed for the account.' },
  too_large: { status: 'failed', meaning: "The message is over the provider's size limit." },
  attachment_missing: { status: 'failed', meaning: 'An attachment or MIME blob the message refers to does not exist.' },
  recipient_rejected: { status: 'failed', meaning: 'The server refused a recipient for good (its reply is kept).' },
  send_as_denied: { status: 'failed', meaning: 'The mailbox may not send as this From address.' },
  message_rejected: { status: 'failed', meaning: 'The server refused the message for good (its reply is kept).' },
  delivery_unconfirmed: {
    status: 'failed',
    meaning: 'An attempt died after the server had the message; it was not sent again, to avoid a duplicate.',
  },
  expired: { status: 'failed', meaning: 'The message waited longer than MESSAGE_EXPIRY_DAYS without being sent.' },
  gave_up: { status: 'failed', meaning: 'Too many transient failures in a row.' },

  in_progress: { status: 'deferred', meaning: 'Another copy of the message is being sent; this one looks again afterwards.' },
  transient: { status: 'deferred', meaning: 'Passing trouble (a connection, a 4xx reply); tried again later.' },
  throttled: { status: 'deferred', meaning: 'The provider asked to slow down; tried again later.' },
  connection_limit: { status: 'deferred', meaning: "All of the mailbox's connections were busy." },
  rate_limited: { status: 'deferred', meaning: "The mailbox's message budget is used up; the message has a place in its line." },
  token_unavailable: { status: 'deferred', meaning: 'No access token could be had just now (the provider did not answer).' },
  not_authorized: { status: 'deferred', meaning: 'The mailbox has not been authorized yet.' },
  needs_reauthorization: { status: 'deferred', meaning: 'The grant was revoked or expired: an admin must authorize again.' },
  config_error: {
    status: 'deferred',
    meaning: "The account's setup is wrong (client, secret, server, role): see the status page.",
  },
  smtp_auth_disabled: { status: 'deferred', meaning: 'SMTP AUTH is disabled for the tenant or the mailbox.' },
  quota_exceeded: { status: 'deferred', meaning: "The mailbox's daily sending quota is used up." },
  mailbox_full: { status: 'deferred', meaning: 'The sending mailbox is full.' },
  paused: { status: 'deferred', meaning: 'The account is paused.' },
  poisoned: {
    status: 'deferred',
    meaning:
      'The Functions host gave up after its maximum of failed tries; the message lies in mail-outbox-poison until put back (npm run poison -- --retry).',
  },
  transport_switched: {
    status: 'deferred',
    meaning:
      'SMTP AUTH is disabled for the mailbox; the account (transport auto) switched to Graph and the message goes that way next.',
  },
} as const satisfies Record<string, { status: 'sent' | 'failed' | 'deferred'; meaning: string }>;

export type OutcomeCode = keyof typeof OUTCOME_CODES;
type CodeOf<S extends string> = { [K in OutcomeCode]: (typeof OUTCOME_CODES)[K]['status'] extends S ? K : never }[OutcomeCode];

/** Sent, but with something to say. */
export type SentCode = CodeOf<'sent'>;
/** Failed for good: the message is not retried. */
export type FailedCode = CodeOf<'failed'>;
/** Still queued: the message comes back after `nextAttemptAt`. */
export type DeferredCode = CodeOf<'deferred'>;
