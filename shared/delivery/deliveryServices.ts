import type { ContainerClient } from '@azure/storage-blob';
import type { QueueClient } from '@azure/storage-queue';
import type { AccountStateWriter } from '../accounts/accountStateWriter';
import type { Account } from '../config/account';
import type { RateBudget } from '../limits/rateBudget';
import type { Logger } from '../log/logger';
import type { OutboxQueue } from '../message/outboxQueue';
import type { GraphSender } from '../graph/graphSender';
import type { AccountSender } from '../smtp/accountSender';
import type { DeliveryLedger, DeliveryRecord } from '../storage/deliveryLedger';
import type { TokenService } from '../tokens/tokenService';
import type { AccountGate } from './accountGate';
import type { DeliveryPolicy } from './policy';

/** What the send path works with; built once per process by the composition root (shared/app.ts). */
export interface DeliveryServices {
  /** The accounts as this instance knows them now (MAIL_ACCOUNTS and the run-time ones). */
  readonly accounts: readonly Account[];
  /** Asks the account table again: an account created a moment ago on another instance is not unknown. */
  refreshAccounts?(): Promise<void>;
  ledger: DeliveryLedger;
  /** Queue `mail-outbox`: the waiting copies of deferred messages go back there. */
  outbox: OutboxQueue;
  results: QueueClient;
  attachments: ContainerClient;
  /** Finished MIME messages (`mime.blob`). */
  mime: ContainerClient;
  tokens: TokenService;
  gate: AccountGate;
  /** Records why an account stopped (SMTP AUTH disabled, quota, a refused fresh token); it raises the alert. */
  accountStates: AccountStateWriter;
  senderFor(account: Account): AccountSender;
  /** Microsoft Graph sendMail, for accounts whose transport is (or switched to) Graph. */
  graphSenderFor(account: Account): GraphSender;
  budgetFor(account: Account): RateBudget;
  policy: DeliveryPolicy;
  /** Which outcomes are published on queue `mail-results` (setting RESULT_EVENTS); the ledger records all. */
  resultEvents: 'all' | 'failures' | 'none';
  log: Logger;
  /** Outcomes the SMTP server accepted but the ledger did not take yet (kept for the retry of the same message). */
  unrecorded: Map<string, DeliveryRecord>;
  /**
   * Claims of this instance that ended without a send (a 4xx, a refused token) whose outcome write failed: id to
   * the claim's ETag. The retry of the same message on this instance knows the `sending` row hides no mail.
   */
  unsentClaims: Map<string, string>;
}

export interface QueueMeta {
  queueMessageId: string;
  dequeueCount: number;
  insertedAt?: Date;
}

export type DeliveryOutcome = 'sent' | 'failed' | 'deferred' | 'duplicate';

/** A ledger row before its status is decided. */
export type RecordDraft = Omit<DeliveryRecord, 'status' | 'updatedAt'>;
