/**
 * The accounts' allowed senders and states, as the app last published them (blob
 * `relay-senders/allowed-senders.json`, which the relay's identity may only read). Read at start and then
 * every minute, with a HEAD first so that an unchanged document costs one small request.
 *
 * Until a document was read (none published yet, no read permission, storage down) the relay checks only the
 * device's own allowed From list, as before, and says so in its log and on /health: the app still refuses a
 * sender its account does not allow, so nothing wrong is sent, it is only refused later.
 */
import type { BlobClient } from '@azure/storage-blob';
import type { Logger } from '../shared/log/logger';
import { parseAllowedSenders, type AllowedSendersDocument } from '../shared/relay/allowedSenders';
import type { Device } from './config';
import { REPLIES, type Reply } from './replies';
import type { StorageHealth } from './storageHealth';

export const SENDERS_REFRESH_MS = 60_000;
const FIRST_READ_MS = 5_000;

export class AccountSenders {
  private document: AllowedSendersDocument | undefined;
  private etag: string | undefined;
  private timer: NodeJS.Timeout | undefined;
  /** The last problem logged, so that a lasting one is logged once, not every minute. */
  private lastProblem: string | undefined;

  constructor(
    private readonly source: BlobClient | undefined,
    private readonly log: Logger,
    private readonly health?: StorageHealth,
  ) {}

  /**
   * Reads the document now, then every `intervalMs`. Waits for the first read at most `firstReadMs`: storage
   * that does not answer must not keep the relay from listening (it then answers as without a document).
   */
  async start(intervalMs = SENDERS_REFRESH_MS, firstReadMs = FIRST_READ_MS): Promise<void> {
    if (!this.source) return;
    let timeout: NodeJS.Timeout | undefined;
    await Promise.race([this.refresh(), new Promise<void>((resolve) => (timeout = setTimeout(resolve, firstReadMs)))]);
    clearTimeout(timeout);
    this.timer = setInterval(() => void this.refresh(), intervalMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  /** When the document in use was published; undefined while there is none. */
  get publishedAt(): string | undefined {
    return this.document?.publishedAt;
  }

  async refresh(): Promise<void> {
    if (!this.source) return;
    try {
      const properties = await this.source.getProperties();
      if (properties.etag && properties.etag === this.etag) return this.health?.ok('allowed senders');
      const body = await this.source.downloadToBuffer();
      const parsed = parseAllowedSenders(body.toString('utf8'));
      this.health?.ok('allowed senders');
      if (!parsed.ok) return this.problem('relay.allowed_senders_invalid', parsed.reason);
      this.document = parsed.document;
      this.etag = properties.etag;
      this.lastProblem = undefined;
      this.log.info('relay.allowed_senders_read', {
        accounts: Object.keys(parsed.document.accounts).length,
        publishedAt: parsed.document.publishedAt,
      });
    } catch (error) {
      const status = (error as { statusCode?: number }).statusCode;
      if (status === 404) {
        this.health?.ok('allowed senders');
        return this.problem(
          'relay.allowed_senders_missing',
          "not published yet: the app writes it on its next token refresh run; until then only the devices' allowedFrom are checked",
        );
      }
      const reason = `${status ?? ''} ${(error as Error).message.split('\n')[0]}`.trim();
      this.health?.failed('allowed senders', reason);
      this.problem('relay.allowed_senders_unreadable', reason);
    }
  }

  /** A refusal when the published document says the device's account does not allow `address`. */
  refusal(device: Device, address: string, field: string): Reply | undefined {
    if (!this.document) return undefined;
    const account = this.document.accounts[device.account];
    if (!account) return REPLIES.unknownAccount(device.account);
    if (!account.allowedFrom.includes(address))
      return REPLIES.accountSenderNotAllowed(field, address, device.account, account.allowedFrom);
    return undefined;
  }

  /** 451 while the account cannot send (its messages would only wait); 550 when it does not exist. */
  stateRefusal(accountId: string): Reply | undefined {
    if (!this.document) return undefined;
    const account = this.document.accounts[accountId];
    if (!account) return REPLIES.unknownAccount(accountId);
    switch (account.state) {
      case 'ready':
        return undefined;
      case 'paused':
        return account.until && Date.parse(account.until) <= Date.now()
          ? undefined
          : REPLIES.accountPaused(accountId, account.until);
      case 'needs_reauthorization':
        return REPLIES.accountNeedsReauthorization(accountId);
      case 'configuration_error':
        return REPLIES.accountConfigError(accountId);
    }
  }

  private problem(event: string, reason: string): void {
    if (this.lastProblem === `${event} ${reason}`) return;
    this.lastProblem = `${event} ${reason}`;
    this.log.warn(event, { blob: this.source?.url.split('?')[0], reason, usingDocumentOf: this.document?.publishedAt ?? null });
  }
}
