/** Every storage resource the app uses. infra/ creates each of these; a test keeps the two in step. */
export const QUEUES = {
  outbox: 'mail-outbox',
  poison: 'mail-outbox-poison',
  results: 'mail-results',
} as const;

export const TABLES = {
  accounts: 'accounts',
  authRequests: 'authrequests',
  deliveries: 'deliveries',
  /** Refresh leases, sealed access tokens, connection slots and rate windows shared by all instances. */
  leases: 'leases',
  /** Accounts created on the status page or through the accounts API (beside MAIL_ACCOUNTS); never a secret. */
  accountConfigs: 'accountconfigs',
  /** Who changed which account, when and what (field names and non-secret values). */
  accountAudit: 'accountaudit',
} as const;

export const CONTAINERS = {
  attachments: 'mail-attachments',
  /** Finished MIME messages (`mime.blob`), e.g. from the SMTP relay. */
  mime: 'mail-mime',
} as const;

/**
 * The relay's two containers (infra/ creates them and grants the relay its roles on them): `relay-senders` holds the
 * allowed-senders document the app publishes and the relay may only read; `relay-activity` holds what each
 * relay reports of its devices (the relay writes it, the status page reads it).
 */
export const RELAY_CONTAINERS = {
  senders: 'relay-senders',
  activity: 'relay-activity',
} as const;

/** The connection name used by the queue trigger and by our own storage clients (`MailStorage`, `MailStorage__queueServiceUri`, ...). */
export const STORAGE_CONNECTION = 'MailStorage';
