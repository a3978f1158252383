import type { Account } from '../config/account';
import { parseAccountInput } from '../config/loadAccounts';
import type { Logger } from '../log/logger';
import type { SecretStore } from '../storage/secretStore';
import { configChanges, type AuditAction, type AuditChange, type AuditEntry, type AccountAuditTable } from './accountAudit';
import type { AccountConfigRow, AccountConfigTable, AdminState } from './accountConfigTable';
import type { AccountDirectory, DirectoryEntry } from './accountDirectory';
import type { AccountStateWriter } from './accountStateWriter';

/** What an admin sends: the account's fields as in MAIL_ACCOUNTS, plus secrets that go to the secret store only. */
export interface AccountRequest {
  config?: Record<string, unknown>;
  /** The client secret (clientAuth "secret"): written to the secret store, never stored or shown here. */
  clientSecret?: string;
  /** The certificate's PEM private key (clientAuth "certificate"): likewise. */
  certificateKey?: string;
  state?: AdminState;
}

export type AdminErrorCode =
  | 'invalid_account'
  | 'managed_by_app_setting'
  | 'unknown_account'
  | 'account_exists'
  | 'changed_meanwhile'
  | 'secret_store_failed';

export type AdminResult =
  | { ok: true; status: 200 | 201; entry: DirectoryEntry | undefined; note?: string }
  | { ok: false; status: 400 | 404 | 409 | 502; error: AdminErrorCode; reasons: string[] };

export interface AccountAdminDeps {
  directory: AccountDirectory;
  table: AccountConfigTable;
  audit: AccountAuditTable;
  secrets: SecretStore;
  accountStates: AccountStateWriter;
  /** The account's refresh token, when it has one (deleting revokes it). */
  readRefreshToken(accountId: string): Promise<string | undefined>;
  /** Secret names of the account's grant (refresh and access token). */
  grantSecretNames(accountId: string): string[];
  revoke(account: Account, refreshToken: string): Promise<{ outcome: string; reason?: string }>;
  /** The account's configuration changed or it is gone: drop its connections, tokens and provider discovery. */
  dropSessions(accountId: string): void;
  /** Resumed: the account's waiting messages go out now. */
  releaseWaiting(accountId: string): Promise<unknown>;
  /** Tells the SMTP relay the accounts and their states as they are now (its allowed-senders document). */
  publishForRelay(): Promise<unknown>;
  log: Logger;
}

const SECRET_FIELDS = ['clientSecret', 'certificateKey'] as const;
const MAX_SECRET_CHARS = 16 * 1024;

/** Splits a request body (the account's fields, `clientSecret`, `certificateKey`, `state`) into its parts. */
export function accountRequestFrom(body: Record<string, unknown>): { request: AccountRequest; problems: string[] } {
  const { clientSecret, certificateKey, state, ...config } = body;
  const problems: string[] = [];
  const request: AccountRequest = {};
  if (Object.keys(config).length > 0) request.config = config;
  for (const [field, value] of [
    ['clientSecret', clientSecret],
    ['certificateKey', certificateKey],
  ] as const) {
    if (value === undefined || value === '') continue;
    if (typeof value !== 'string' || value.length > MAX_SECRET_CHARS)
      problems.push(`${field}: must be text of at most ${MAX_SECRET_CHARS} characters`);
    else request[field] = value;
  }
  if (state !== undefined) {
    if (state === 'active' || state === 'paused') request.state = state;
    else problems.push('state: must be "active" or "paused"');
  }
  return { request, problems };
}

/**
 * Creating, changing, pausing and deleting run-time accounts. Each change is checked with the MAIL_ACCOUNTS
 * rules, written to table `accountconfigs` with the ETag it read, recorded in the audit trail, and seen by this
 * instance at once (others within a few seconds, or at once when a message names an account they do not know).
 */
export class AccountAdmin {
  constructor(private readonly deps: AccountAdminDeps) {}

  async create(id: string, request: AccountRequest, who: string): Promise<AdminResult> {
    const refused = this.refuseAppSetting(id);
    if (refused) return refused;
    const checked = this.check(id, request);
    if (!checked.ok) return checked;
    const now = new Date().toISOString();
    const row: Omit<AccountConfigRow, 'etag'> = {
      id,
      config: checked.config,
      state: request.state ?? 'active',
      createdAt: now,
      createdBy: who,
      updatedAt: now,
      updatedBy: who,
      ...secretDates(request, undefined, now),
    };
    // The row first: a create that loses to another one must not overwrite that account's secrets.
    if (!(await this.deps.table.write(row, undefined)))
      return fail(409, 'account_exists', `id: an account "${id}" exists already; change it with PUT or on its card`);
    const stored = await this.storeSecrets(checked.account, request);
    if (!stored.ok) {
      const written = await this.deps.table.get(id);
      if (written) await this.deps.table.delete(id, written.etag);
      return stored;
    }
    await this.record('create', id, who, [
      ...configChanges(undefined, checked.config),
      ...secretChanges(request),
      ...stateChange(undefined, row.state),
    ]);
    await this.deps.directory.refresh();
    await this.publish(id);
    return { ok: true, status: 201, entry: this.deps.directory.entry(id) };
  }

  /** A full configuration replaces the stored one; a request with only `state` pauses or resumes. */
  async update(id: string, request: AccountRequest, who: string): Promise<AdminResult> {
    const refused = this.refuseAppSetting(id);
    if (refused) return refused;
    const before = await this.deps.table.get(id);
    if (!before) return fail(404, 'unknown_account', `There is no run-time account "${id}".`);
    const onlyState = !request.config && !request.clientSecret && !request.certificateKey;
    let config = before.config;
    let account: Account | undefined;
    if (!onlyState) {
      const checked = this.check(id, { ...request, config: request.config ?? before.config });
      if (!checked.ok) return checked;
      config = checked.config;
      account = checked.account;
    }
    const now = new Date().toISOString();
    const state = request.state ?? before.state;
    const row: Omit<AccountConfigRow, 'etag'> = {
      ...before,
      config,
      state,
      updatedAt: now,
      updatedBy: who,
      ...secretDates(request, before, now),
    };
    if (!(await this.deps.table.write(row, before.etag)))
      return fail(409, 'changed_meanwhile', `Account "${id}" was changed by someone else meanwhile; reload and try again.`);
    if (account) {
      const stored = await this.storeSecrets(account, request);
      if (!stored.ok) return stored;
    }
    const changes = [...configChanges(before.config, config), ...secretChanges(request), ...stateChange(before.state, state)];
    const action: AuditAction = onlyState ? (state === 'paused' ? 'pause' : 'resume') : 'update';
    await this.record(action, id, who, changes);
    this.deps.dropSessions(id);
    await this.deps.directory.refresh();
    if (before.state === 'paused' && state === 'active') await this.deps.releaseWaiting(id);
    await this.publish(id);
    return { ok: true, status: 200, entry: this.deps.directory.entry(id) };
  }

  /**
   * Revokes the grant at the provider where it can be, deletes the account's token secrets and the secrets set on
   * the page, and removes the row. The ledger keeps the account's deliveries; its status row says not authorized.
   */
  async delete(id: string, who: string): Promise<AdminResult> {
    const refused = this.refuseAppSetting(id);
    if (refused) return refused;
    const before = await this.deps.table.get(id);
    if (!before) return fail(404, 'unknown_account', `There is no run-time account "${id}".`);
    const parsed = parseAccountInput(before.config);
    const notes: string[] = [];
    const refreshToken = await this.deps.readRefreshToken(id).catch(() => undefined);
    if (refreshToken && parsed.ok) {
      const revoked = await this.deps.revoke(parsed.account, refreshToken);
      notes.push(
        revoked.outcome === 'revoked'
          ? 'grant revoked at the provider'
          : revoked.outcome === 'not_supported'
            ? 'the provider offers no revocation: remove the app from the mailbox there'
            : `revoking the grant failed (${revoked.reason ?? 'no reason'}): remove the app from the mailbox at the provider`,
      );
    } else notes.push('no grant to revoke');
    if (!(await this.deps.table.delete(id, before.etag)))
      return fail(409, 'changed_meanwhile', `Account "${id}" was changed by someone else meanwhile; reload and try again.`);

    const names = [...this.deps.grantSecretNames(id), ...(parsed.ok ? pageSecretNames(parsed.account, before) : [])];
    const { secrets } = this.deps;
    if (secrets.delete) {
      const failed: string[] = [];
      for (const name of names) await secrets.delete(name).catch(() => failed.push(name));
      notes.push(failed.length === 0 ? 'secrets deleted' : `could not delete the secrets ${failed.join(', ')}`);
    } else notes.push(`this secret store cannot delete: remove the secrets ${names.join(', ')} by hand`);
    if (parsed.ok) await this.deps.accountStates.markNotAuthorized(parsed.account);
    this.deps.dropSessions(id);
    await this.record('delete', id, who, configChanges(before.config, undefined), notes.join('; '));
    await this.deps.directory.refresh();
    await this.publish(id);
    this.deps.log.info('accounts.deleted', { account: id, note: notes.join('; ') });
    return { ok: true, status: 200, entry: undefined, note: notes.join('; ') };
  }

  /** The change is made: a relay that cannot hear of it now does at the next hourly publication. */
  private async publish(accountId: string): Promise<void> {
    try {
      await this.deps.publishForRelay();
    } catch (error) {
      this.deps.log.warn('relay.allowed_senders_publish_failed', { account: accountId, error });
    }
  }

  private refuseAppSetting(id: string): AdminResult | undefined {
    if (!this.deps.directory.isAppSetting(id)) return undefined;
    return fail(
      409,
      'managed_by_app_setting',
      `Account "${id}" is managed by the app setting MAIL_ACCOUNTS: change it there (Bicep parameter mailAccounts) and restart the app.`,
    );
  }

  private check(
    id: string,
    request: AccountRequest,
  ): { ok: true; config: Record<string, unknown>; account: Account } | Extract<AdminResult, { ok: false }> {
    const config = { ...request.config, id: request.config?.id ?? id };
    if (config.id !== id)
      return fail(400, 'invalid_account', `id: "${String(config.id)}" differs from the id in the URL ("${id}")`);
    const parsed = parseAccountInput(config);
    if (!parsed.ok) return { ok: false, status: 400, error: 'invalid_account', reasons: parsed.problems };
    const problems: string[] = [];
    const auth = parsed.account.clientAuth;
    if (request.clientSecret && auth.type !== 'secret')
      problems.push(`clientSecret: the account's clientAuth is "${auth.type}", not "secret"`);
    if (request.certificateKey && auth.type !== 'certificate')
      problems.push(`certificateKey: the account's clientAuth is "${auth.type}", not "certificate"`);
    if (request.certificateKey && !/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(request.certificateKey))
      problems.push('certificateKey: must be a PEM private key (-----BEGIN PRIVATE KEY-----)');
    const otherDefault = parsed.input.default ? this.deps.directory.defaultAccountOtherThan(id) : undefined;
    if (otherDefault) problems.push(`default: account "${otherDefault}" is the default account already`);
    if (problems.length > 0) return { ok: false, status: 400, error: 'invalid_account', reasons: problems };
    return { ok: true, config, account: parsed.account };
  }

  private async storeSecrets(account: Account, request: AccountRequest): Promise<AdminResult | { ok: true }> {
    const auth = account.clientAuth;
    try {
      if (request.clientSecret && auth.type === 'secret')
        await this.deps.secrets.set(auth.secretName, request.clientSecret, { contentType: 'oauth-client-secret' });
      if (request.certificateKey && auth.type === 'certificate')
        await this.deps.secrets.set(auth.keySecretName, request.certificateKey, { contentType: 'application/x-pem-file' });
      return { ok: true };
    } catch (error) {
      this.deps.log.error('accounts.secret_write_failed', { account: account.id, error });
      return fail(
        502,
        'secret_store_failed',
        'The secret could not be written to the secret store; nothing was changed. The log has the details.',
      );
    }
  }

  private async record(
    action: AuditAction,
    accountId: string,
    who: string,
    changes: AuditChange[],
    note?: string,
  ): Promise<void> {
    const entry: AuditEntry = { at: new Date().toISOString(), who, accountId, action, changes, ...(note ? { note } : {}) };
    await this.deps.audit.record(entry);
  }
}

function fail(status: 400 | 404 | 409 | 502, error: AdminErrorCode, reason: string): Extract<AdminResult, { ok: false }> {
  return { ok: false, status, error, reasons: [reason] };
}

function secretDates(request: AccountRequest, before: AccountConfigRow | undefined, now: string) {
  const clientSecretSetAt = request.clientSecret ? now : before?.clientSecretSetAt;
  const certificateKeySetAt = request.certificateKey ? now : before?.certificateKeySetAt;
  return { ...(clientSecretSetAt ? { clientSecretSetAt } : {}), ...(certificateKeySetAt ? { certificateKeySetAt } : {}) };
}

/** A secret field in the trail says only that it was set. */
function secretChanges(request: AccountRequest): AuditChange[] {
  return SECRET_FIELDS.filter((field) => request[field]).map((field) => ({ field, to: '(set)' }));
}

function stateChange(before: AdminState | undefined, after: AdminState): AuditChange[] {
  if (before === after || (before === undefined && after === 'active')) return [];
  return [{ field: 'state', ...(before ? { from: before } : {}), to: after }];
}

/** The secrets this app wrote for the account (typed on the page), not ones an operator put there by name. */
function pageSecretNames(account: Account, row: AccountConfigRow): string[] {
  const auth = account.clientAuth;
  if (auth.type === 'secret' && row.clientSecretSetAt) return [auth.secretName];
  if (auth.type === 'certificate' && row.certificateKeySetAt) return [auth.keySecretName];
  return [];
}
