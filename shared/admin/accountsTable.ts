import type { AuditEntry } from '../accounts/accountAudit';
import type { DirectoryEntry } from '../accounts/accountDirectory';
import type { AccountState } from '../accounts/accountStatus';
import { withFunctionKey } from '../web/functionKey';
import { html, type SafeHtml } from '../web/html';
import { accountPath, STATUS_PAGE_PATH } from '../web/routes';
import { formatUtc } from '../web/timeText';
import type { AccountPage, AccountQuery } from './accountPage';
import { STATE_LABELS } from './stateText';

/** The page's own CSS for this section (the CSP allows inline styles; no script). */
export const ACCOUNTS_STYLE = `
.accounts-overview .counts{display:flex;flex-wrap:wrap;gap:.4rem 1rem;padding:0;list-style:none}
.accounts-overview form.search{display:flex;flex-wrap:wrap;gap:.5rem;align-items:center;margin:.6rem 0}
.accounts-overview table{font-size:.9rem}
.pager{display:flex;gap:1rem;align-items:center;margin:.5rem 0}
.account-form{display:grid;grid-template-columns:max-content 1fr;gap:.35rem .8rem;align-items:center;margin:.6rem 0}
.account-form input,.account-form select,.account-form textarea{padding:.3rem .45rem;border:1px solid #b8bdc7;border-radius:4px}
.account-form textarea{min-height:4rem;font-family:ui-monospace,Consolas,monospace}
.manage{border-top:1px dashed #d6d9df;margin-top:.8rem;padding-top:.6rem}
.manage .inline{display:inline-flex;gap:.4rem;align-items:center;margin-right:1rem}
.audit td{vertical-align:top}
`.trim();

/** Counts by state, the search, this page of the list with its pager, the create form and the audit trail. */
export function accountsOverview(page: AccountPage, functionKey: string | undefined): SafeHtml {
  const link = (query: Partial<AccountQuery>) =>
    withFunctionKey(STATUS_PAGE_PATH, functionKey, queryParams({ ...page.query, page: 1, ...query }));
  const counts = (Object.keys(STATE_LABELS) as AccountState[])
    .filter((state) => page.counts[state])
    .map(
      (state) =>
        html`<li data-state-count="${state}">
          <a href="${link({ state, q: '' })}">${STATE_LABELS[state].label}: <strong>${page.counts[state]}</strong></a>
        </li>`,
    );
  return html`<section class="accounts-overview" aria-labelledby="accounts-heading">
    <h2 id="accounts-heading">Accounts</h2>
    <ul class="counts">
      <li data-total="${page.total}">All: <strong>${page.total}</strong></li>
      ${counts}
    </ul>
    ${searchForm(page.query, functionKey)} ${page.unusable.length > 0 ? unusableNotice(page) : ''}
    <p class="note" data-matched="${page.matched}">
      ${page.matched} account${page.matched === 1 ? '' : 's'} match; page ${page.query.page} of ${page.pages}.
    </p>
    <table class="account-list">
      <thead>
        <tr>
          <th>Account</th>
          <th>Signs in as</th>
          <th>State</th>
          <th>Managed by</th>
        </tr>
      </thead>
      <tbody>
        ${page.entries.map((entry, index) => {
          const view = page.views[index]!;
          return html`<tr data-row="${entry.account.id}">
            <td>
              <a href="#account-${entry.account.id}"><code>${entry.account.id}</code></a> ${view.displayName}
            </td>
            <td>${entry.account.user}</td>
            <td>${entry.state === 'paused' ? 'Paused by an administrator' : view.status.label}</td>
            <td>${entry.source === 'app_setting' ? 'the app setting' : 'this page'}</td>
          </tr>`;
        })}
      </tbody>
    </table>
    ${pager(page, link)} ${createForm(functionKey)} ${auditTrail(page.audit)}
  </section>`;
}

function queryParams(query: AccountQuery): Record<string, string> {
  return {
    ...(query.q ? { q: query.q } : {}),
    ...(query.state ? { state: query.state } : {}),
    ...(query.page > 1 ? { page: String(query.page) } : {}),
  };
}

function searchForm(query: AccountQuery, functionKey: string | undefined): SafeHtml {
  const states = Object.entries(STATE_LABELS) as [AccountState, { label: string }][];
  return html`<form class="search" method="get" action="${STATUS_PAGE_PATH}" role="search">
    ${functionKey ? html`<input type="hidden" name="code" value="${functionKey}" />` : ''}
    <label>Search id, name or user <input type="search" name="q" value="${query.q}" maxlength="100" /></label>
    <label
      >State
      <select name="state">
        <option value="">any</option>
        ${states.map(
          ([state, { label }]) => html`<option value="${state}" ${query.state === state ? 'selected' : ''}>${label}</option>`,
        )}
      </select></label
    >
    <button type="submit">Search</button>
  </form>`;
}

function pager(page: AccountPage, link: (query: Partial<AccountQuery>) => string): SafeHtml | string {
  if (page.pages <= 1) return '';
  const at = page.query.page;
  return html`<nav class="pager" aria-label="Pages">
    ${at > 1 ? html`<a rel="prev" href="${link({ ...page.query, page: at - 1 })}">Previous</a>` : ''}
    <span>Page ${at} of ${page.pages}</span>
    ${at < page.pages ? html`<a rel="next" href="${link({ ...page.query, page: at + 1 })}">Next</a>` : ''}
  </nav>`;
}

function unusableNotice(page: AccountPage): SafeHtml {
  return html`<div class="notice tone-bad" role="status">
    Stored accounts that cannot be used:
    <ul>
      ${page.unusable.map((row) => html`<li><code>${row.id}</code>: ${row.problems.join('; ')}</li>`)}
    </ul>
  </div>`;
}

/** The fields of an account form; `values` prefill an edit (never a secret: those say only when they were set). */
function accountFields(values: FormValues, isNew: boolean): SafeHtml {
  const option = (value: string, current: string | undefined, label = value) =>
    html`<option value="${value}" ${current === value ? 'selected' : ''}>${label}</option>`;
  return html`<div class="account-form">
    ${
      isNew
        ? html`<label for="new-id">Id</label
            ><input id="new-id" name="id" required pattern="[a-z0-9][a-z0-9-]{0,38}[a-z0-9]|[a-z0-9]" maxlength="40" />`
        : ''
    }
    <label>Name</label><input name="displayName" value="${values.displayName ?? ''}" maxlength="100" /> <label>Provider</label
    ><select name="provider">
      ${option('microsoft', values.provider)} ${option('google', values.provider)} ${option('custom', values.provider)}
    </select>
    <label>Flow</label
    ><select name="flow">
      ${option('authorization_code', values.flow, 'delegated (authorization code)')}
      ${option('client_credentials', values.flow, 'app-only (client credentials)')}
    </select>
    <label>Tenant id (Microsoft)</label><input name="tenantId" value="${values.tenantId ?? ''}" /> <label>Client id</label
    ><input name="clientId" value="${values.clientId ?? ''}" /> <label>Signs in as (user)</label
    ><input name="user" type="email" value="${values.user ?? ''}" /> <label>Default From</label
    ><input name="from" type="email" value="${values.from ?? ''}" /> <label>Also allowed From</label
    ><input name="allowedFrom" value="${values.allowedFrom ?? ''}" /> <label>Alert receivers</label
    ><input name="alerts" value="${values.alerts ?? ''}" /> <label>Client authentication</label
    ><select name="clientAuthType">
      ${option('secret', values.clientAuthType, 'client secret')} ${option('certificate', values.clientAuthType)}
      ${option('managed_identity', values.clientAuthType, 'managed identity (federated)')}
      ${option('none', values.clientAuthType)}
    </select>
    <label>Client secret</label
    ><span
      ><input name="clientSecret" type="password" autocomplete="new-password" />
      <span class="note"
        >${values.clientSecretSetAt ? `set on ${formatUtc(values.clientSecretSetAt)}; type to replace` : 'kept in the secret store only'}</span
      ></span
    >
    <label>Certificate thumbprint</label><input name="thumbprint" value="${values.thumbprint ?? ''}" />
    <label>Certificate private key (PEM)</label
    ><span>
      <textarea name="certificateKey" autocomplete="off"></textarea>
      <span class="note">${values.certificateKeySetAt ? `set on ${formatUtc(values.certificateKeySetAt)}` : ''}</span></span
    >
    <label>Issuer (custom)</label><input name="issuer" type="url" value="${values.issuer ?? ''}" /> <label>Scopes (custom)</label
    ><input name="scopes" value="${values.scopes ?? ''}" /> <label>SMTP host</label
    ><input name="smtpHost" value="${values.smtpHost ?? ''}" /> <label>SMTP port</label
    ><input name="smtpPort" inputmode="numeric" value="${values.smtpPort ?? ''}" /> <label>SMTP security</label
    ><select name="smtpSecurity">
      ${option('', values.smtpSecurity, 'preset')} ${option('starttls', values.smtpSecurity)}
      ${option('tls', values.smtpSecurity)} ${option('plain', values.smtpSecurity, 'plain (loopback only)')}
    </select>
    <label>Default account</label><input name="default" type="checkbox" ${values.isDefault ? 'checked' : ''} />
    <label>More settings (JSON)</label><textarea name="more">${values.more ?? ''}</textarea>
  </div>`;
}

function createForm(functionKey: string | undefined): SafeHtml {
  return html`<details class="create">
    <summary>Add an account</summary>
    <form method="post" action="${withFunctionKey('/api/accounts', functionKey)}">
      <input type="hidden" name="action" value="create" />
      ${accountFields({ clientAuthType: 'secret' }, true)}
      <button type="submit">Create account</button>
    </form>
  </details>`;
}

/** Under an account's card: read-only for MAIL_ACCOUNTS; edit, pause or resume, delete for run-time accounts. */
export function accountManagement(entry: DirectoryEntry, functionKey: string | undefined): SafeHtml {
  if (entry.source === 'app_setting' || !entry.row)
    return html`<p class="manage note" data-managed="app_setting">
      Managed by the app setting <code>MAIL_ACCOUNTS</code>: read-only here.
    </p>`;
  const row = entry.row;
  const action = withFunctionKey(accountPath(entry.account.id), functionKey);
  const paused = entry.state === 'paused';
  return html`<div class="manage" data-managed="table">
    <p class="note">
      Created ${formatUtc(row.createdAt)} by ${row.createdBy}; last changed ${formatUtc(row.updatedAt)} by ${row.updatedBy}.
      ${paused ? html`<strong>Paused by an administrator: its messages wait.</strong>` : ''}
    </p>
    <form class="inline" method="post" action="${action}">
      <input type="hidden" name="action" value="${paused ? 'resume' : 'pause'}" />
      <button type="submit">${paused ? 'Resume' : 'Pause'}</button>
    </form>
    <form class="inline" method="post" action="${action}">
      <input type="hidden" name="action" value="delete" />
      <label><input type="checkbox" name="confirm" required /> revoke its grant and delete its secrets</label>
      <button type="submit">Delete account</button>
    </form>
    <details>
      <summary>Edit</summary>
      <form method="post" action="${action}">
        <input type="hidden" name="action" value="update" />
        ${accountFields(formValues(row.config, row, entry.account.isDefault), false)}
        <button type="submit">Save changes</button>
      </form>
    </details>
  </div>`;
}

function auditTrail(audit: readonly AuditEntry[]): SafeHtml {
  if (audit.length === 0) return html`<p class="note">No account has been changed on this page yet.</p>`;
  return html`<details class="audit" open>
    <summary>Recent changes to accounts</summary>
    <table>
      <thead>
        <tr>
          <th>When</th>
          <th>Who</th>
          <th>Account</th>
          <th>What</th>
          <th>Changes</th>
        </tr>
      </thead>
      <tbody>
        ${audit.map(
          (entry) =>
            html`<tr data-audit="${entry.action}" data-audit-account="${entry.accountId}">
              <td><time datetime="${entry.at}">${formatUtc(entry.at)}</time></td>
              <td>${entry.who}</td>
              <td><code>${entry.accountId}</code></td>
              <td>${entry.action}${entry.note ? html` <span class="note">(${entry.note})</span>` : ''}</td>
              <td>
                ${entry.changes.map(
                  (change) =>
                    html`<code>${change.field}</code>${change.from !== undefined ? html`: ${change.from} →` : ':'}
                      ${change.to ?? '(removed)'}<br />`,
                )}
              </td>
            </tr>`,
        )}
      </tbody>
    </table>
  </details>`;
}

interface FormValues {
  displayName?: string;
  provider?: string;
  flow?: string;
  tenantId?: string;
  clientId?: string;
  user?: string;
  from?: string;
  allowedFrom?: string;
  alerts?: string;
  clientAuthType?: string;
  thumbprint?: string;
  issuer?: string;
  scopes?: string;
  smtpHost?: string;
  smtpPort?: string;
  smtpSecurity?: string;
  isDefault?: boolean;
  more?: string;
  clientSecretSetAt?: string;
  certificateKeySetAt?: string;
}

/** A stored configuration as the form's fields; what the form has no field for goes to "more settings". */
function formValues(config: Record<string, unknown>, row: DirectoryEntry['row'], isDefault: boolean): FormValues {
  const {
    id: _id,
    displayName,
    provider,
    flow,
    tenantId,
    clientId,
    user,
    from,
    allowedFrom,
    alerts,
    clientAuth,
    oauth,
    smtp,
    default: _d,
    ...rest
  } = config as Record<string, unknown> & {
    clientAuth?: { type?: string; thumbprint?: string; secretName?: string; keySecretName?: string };
    oauth?: { issuer?: string; scopes?: string[] };
    smtp?: { host?: string; port?: number; security?: string; caFile?: string };
  };
  const more: Record<string, unknown> = { ...rest };
  if (smtp?.caFile) more.smtp = { caFile: smtp.caFile };
  if (clientAuth?.secretName || clientAuth?.keySecretName)
    more.clientAuth = {
      type: clientAuth.type,
      ...(clientAuth.secretName ? { secretName: clientAuth.secretName } : {}),
      ...(clientAuth.keySecretName ? { keySecretName: clientAuth.keySecretName } : {}),
    };
  const text = (value: unknown) => (typeof value === 'string' ? value : undefined);
  const list = (value: unknown) => (Array.isArray(value) ? value.join(', ') : undefined);
  const values: FormValues = {
    isDefault,
    ...(text(displayName) ? { displayName: text(displayName)! } : {}),
    ...(text(provider) ? { provider: text(provider)! } : {}),
    ...(text(flow) ? { flow: text(flow)! } : {}),
    ...(text(tenantId) ? { tenantId: text(tenantId)! } : {}),
    ...(text(clientId) ? { clientId: text(clientId)! } : {}),
    ...(text(user) ? { user: text(user)! } : {}),
    ...(text(from) ? { from: text(from)! } : {}),
    ...(list(allowedFrom) ? { allowedFrom: list(allowedFrom)! } : {}),
    ...(list(alerts) ? { alerts: list(alerts)! } : {}),
    clientAuthType: clientAuth?.type ?? 'secret',
    ...(clientAuth?.thumbprint ? { thumbprint: clientAuth.thumbprint } : {}),
    ...(oauth?.issuer ? { issuer: oauth.issuer } : {}),
    ...(oauth?.scopes ? { scopes: oauth.scopes.join(' ') } : {}),
    ...(smtp?.host ? { smtpHost: smtp.host } : {}),
    ...(smtp?.port ? { smtpPort: String(smtp.port) } : {}),
    ...(smtp?.security ? { smtpSecurity: smtp.security } : {}),
    ...(Object.keys(more).length > 0 ? { more: JSON.stringify(more, null, 2) } : {}),
    ...(row?.clientSecretSetAt ? { clientSecretSetAt: row.clientSecretSetAt } : {}),
    ...(row?.certificateKeySetAt ? { certificateKeySetAt: row.certificateKeySetAt } : {}),
  };
  return values;
}
