import { html, page, raw, type SafeHtml } from '../web/html';
import type { AccountView } from './accountView';
import { accountPath, STATUS_PAGE_PATH } from '../web/routes';
import { withFunctionKey } from '../web/functionKey';
import type { TestVerdict } from './testEmailOutcome';
import { formatUtc, relativeTime } from '../web/timeText';
import { ACCOUNTS_STYLE } from './accountsTable';
import type { RelayActivity } from '../relay/relayActivity';
import { relaySection } from './relaySection';

export interface StatusPageInput {
  views: readonly AccountView[];
  /** The key the page was opened with; only links and form actions to function-level routes carry it. */
  functionKey?: string;
  /** A test email just queued by this page's form (after its redirect back here). */
  /** The outcome of the test email just requested (`?sent=<id>`). */
  testVerdict?: TestVerdict;
  /** What each SMTP relay last reported of its devices (none: no relay section). */
  relays?: readonly RelayActivity[];
  now: number;
  /** Counts, search, paging, the create form and the audit trail (accountsTable.ts). */
  overview?: SafeHtml;
  /** Per account id: what goes under its card (read-only note, or edit/pause/delete). */
  cardExtras?: ReadonlyMap<string, SafeHtml>;
}

// page() has no slot for extra CSS; the CSP allows inline styles, so the page brings its own block.
const STYLE = `
main{max-width:64rem}
.account{border:1px solid #e3e5ea;border-radius:6px;padding:1rem 1.2rem;margin:1.2rem 0}
.account h2{font-size:1.15rem;margin:0 0 .5rem}
.state{display:inline-block;padding:.1rem .55rem;border-radius:999px;font-weight:600;font-size:.85rem;border:1px solid}
.state::before{margin-right:.35em}
.tone-ok{background:#e6f4ea;color:#17692f;border-color:#17692f}.tone-ok::before{content:"\\2713"}
.tone-warn{background:#fff4e0;color:#8a5300;border-color:#8a5300}.tone-warn::before{content:"!"}
.tone-bad{background:#fde8e8;color:#a32020;border-color:#a32020}.tone-bad::before{content:"\\2715"}
.tone-idle{background:#eef0f3;color:#444b57;border-color:#444b57}.tone-idle::before{content:"\\25CB"}
.sentence{margin:.4rem 0 .8rem}
.actions{display:flex;flex-wrap:wrap;gap:.8rem 1.5rem;align-items:center;margin-top:.8rem}
.actions form{display:flex;gap:.5rem;align-items:center;flex-wrap:wrap}
.actions input{padding:.35rem .5rem;border:1px solid #b8bdc7;border-radius:4px;min-width:16rem}
.notice{background:#e8f0fe;border:1px solid #2f5bd3;border-radius:6px;padding:.6rem .9rem}
.recent table{border-collapse:collapse;font-size:.85rem;margin:.4rem 0}.recent td,.recent th{border-top:1px solid #e1e4ea;padding:.25rem .5rem;text-align:left;vertical-align:top}
.relays table{border-collapse:collapse;font-size:.85rem;margin:.4rem 0 1rem}.relays td,.relays th{border-top:1px solid #e1e4ea;padding:.25rem .5rem;text-align:left;vertical-align:top}
.badge{font-size:.75rem;font-weight:600;color:#444b57;border:1px solid #b8bdc7;border-radius:4px;padding:0 .35rem;margin-left:.4rem;vertical-align:middle}
`.trim();

/** The status page: one card per account with its state in words, its facts, Authorize and a test-email form. */
export function statusPage({
  views,
  functionKey,
  testVerdict,
  relays = [],
  now,
  overview,
  cardExtras,
}: StatusPageInput): SafeHtml {
  const body = html`<style>
      ${raw(STYLE)}
      ${raw(ACCOUNTS_STYLE)}
    </style>
    ${testVerdict ? verdictNotice(testVerdict, now) : ''} ${views.length === 0 && !overview ? NO_ACCOUNTS : ''} ${overview ?? ''}
    ${views.map((view) => accountCard(view, functionKey, now, cardExtras?.get(view.id)))} ${relaySection(relays, now)}
    <p class="note">
      Counts are the deliveries recorded in the last 24 hours. Times are UTC. The same as JSON:
      <a href="${withFunctionKey('/api/accounts', functionKey)}">/api/accounts</a>.
    </p>`;
  return page({ title: 'Mail accounts', body });
}

function verdictNotice(verdict: TestVerdict, now: number): SafeHtml {
  const id = html`<code>${verdict.id}</code>`;
  switch (verdict.status) {
    case 'sent':
      return html`<p class="notice tone-ok" role="status" data-verdict="sent">
        Test email ${id} was sent. The server answered: <code>${verdict.smtpReply ?? ''}</code>
      </p>`;
    case 'failed':
      return html`<p class="notice tone-bad" role="status" data-verdict="failed">
        Test email ${id} failed:
        ${verdict.reason ?? 'no reason recorded'}${verdict.code ? html` <code>${verdict.code}</code>` : ''}
      </p>`;
    case 'waiting':
      return html`<p class="notice" role="status" data-verdict="waiting">
        Test email ${id} is waiting:
        ${verdict.reason ?? ''}${verdict.code ? html` <code>${verdict.code}</code>` : ''}${
          verdict.nextAttemptAt ? html` It is tried again ${when(verdict.nextAttemptAt, now)}.` : ''
        }
      </p>`;
    case 'queued':
      return html`<p class="notice" role="status" data-verdict="queued">
        Test email ${id} is queued and has not been picked up yet. Reload this page for its outcome; it is also in the deliveries
        table under this id and on the mail-results queue.
      </p>`;
  }
}

function accountCard(view: AccountView, functionKey: string | undefined, now: number, extra?: SafeHtml): SafeHtml {
  const { status, counts } = view;
  const otherFrom = view.allowedFrom.filter((address) => address !== view.from.toLowerCase());
  const alsoAllowed = otherFrom.length > 0 ? html` <span class="note">(also allowed: ${otherFrom.join(', ')})</span>` : '';
  const authorizedSince = view.authorizedAt
    ? html` <span class="note"
        >since ${when(view.authorizedAt, now)}${view.authorizedBy ? `, by ${view.authorizedBy}` : ''}</span
      >`
    : '';
  // A token of a grant that is gone is not a live expiry: showing one would suggest the account still works.
  const grantGone = ['not_authorized', 'reauthorization_required', 'configuration_error'].includes(status.state);
  const lastOk =
    view.lastRefreshOkAt && view.lastRefreshOkAt !== view.lastRefreshAt
      ? html` <span class="note">(last successful: ${when(view.lastRefreshOkAt, now)})</span>`
      : '';
  return html`<section class="account" id="account-${view.id}" data-account="${view.id}" data-state="${status.state}">
    <h2>${view.displayName} <code>${view.id}</code>${view.isDefault ? html`<span class="badge">default</span>` : ''}</h2>
    <p class="status"><span class="state tone-${status.tone}">${status.label}</span></p>
    <p class="sentence">${status.sentence}</p>
    ${view.graphNotice ? html`<p class="sentence" data-notice="graph-consent">${view.graphNotice}</p>` : ''}
    <dl>
      <dt>Provider</dt>
      <dd>${view.provider}, ${view.appOnly ? 'app-only (client credentials)' : 'delegated (authorization code)'}</dd>
      <dt>Transport</dt>
      <dd>
        ${TRANSPORT_TEXT[view.transport]}${
          view.graphSince
            ? html`;
                <span data-notice="graph-since"
                  >sending through Microsoft Graph since ${formatUtc(view.graphSince.at)} (${view.graphSince.reason})</span
                >`
            : ''
        }
      </dd>
      <dt>Signs in as</dt>
      <dd>${view.user}</dd>
      <dt>Sends from</dt>
      <dd>${view.from}${alsoAllowed}</dd>
      <dt>Authorized user</dt>
      <dd>${view.authorizedUser ?? '—'}${authorizedSince}</dd>
      <dt>Token expires</dt>
      <dd>
        ${view.tokenExpiresAt && !grantGone ? when(view.tokenExpiresAt, now) : grantGone && view.tokenExpiresAt ? 'no valid token' : '—'}
      </dd>
      <dt>Last refresh</dt>
      <dd>${view.lastRefreshAt ? when(view.lastRefreshAt, now) : '—'}${lastOk}</dd>
      <dt>Last error</dt>
      <dd>${lastError(view)}</dd>
      <dt>Last 24 hours</dt>
      <dd>
        <span data-count="sent">${counts.sent24h}</span> sent, <span data-count="failed">${counts.failed24h}</span> failed,
        <span data-count="deferred">${counts.deferredNow}</span> waiting
      </dd>
    </dl>
    ${recentProblems(view, now)}
    <div class="actions">
      ${
        view.links.authorize
          ? html`<a class="button" href="${withFunctionKey(view.links.authorize, functionKey)}"
              >${view.authorizedAt ? 'Re-authorize' : 'Authorize'}</a
            >`
          : html`<span class="note">app-only, no sign-in needed</span>`
      }
      <form method="post" action="${withFunctionKey(accountPath(view.id, 'test'), functionKey)}">
        <label>Send a test email to <input type="email" name="to" required maxlength="320" autocomplete="email" /></label>
        <button type="submit">Send test email</button>
      </form>
    </div>
    ${extra ?? ''}
  </section> `;
}

function recentProblems(view: AccountView, now: number): SafeHtml | string {
  if (view.recentProblems.length === 0) return '';
  return html`<details class="recent">
    <summary>Recent failed and waiting messages (${view.recentProblems.length})</summary>
    <table>
      <thead>
        <tr>
          <th>When</th>
          <th>Message id</th>
          <th>Recipients</th>
          <th>Outcome</th>
          <th>Reason</th>
        </tr>
      </thead>
      <tbody>
        ${view.recentProblems.map(
          (problem) =>
            html`<tr data-message="${problem.id}" data-status="${problem.status}">
              <td>${when(problem.at, now)}</td>
              <td><code>${problem.id}</code></td>
              <td>${problem.recipients ?? '—'}</td>
              <td>
                ${problem.status === 'failed' ? 'failed' : 'waiting'}${problem.code ? html` <code>${problem.code}</code>` : ''}
              </td>
              <td>
                ${problem.reason ?? '—'}${
                  problem.nextAttemptAt ? html` <span class="note">(next try ${when(problem.nextAttemptAt, now)})</span>` : ''
                }
              </td>
            </tr>`,
        )}
      </tbody>
    </table>
  </details>`;
}

function lastError(view: AccountView): SafeHtml | string {
  if (!view.lastError && !view.lastErrorCode && !view.providerError) return '—';
  // The provider error usually starts with our code (`invalid_grant` / `invalid_grant AADSTS700082`): show it once.
  const codes = [view.providerError, view.lastErrorCode]
    .filter((code): code is string => !!code)
    .filter((code, index, all) => index === 0 || !all[0]!.startsWith(code));
  // The state sentence above already tells the reason when the account is stopped by it: say it once.
  const told = !!view.lastError && view.status.sentence.includes(view.lastError.trim().replace(/\.+$/, ''));
  const reason = told ? html`<span class="note">(see above)</span>` : (view.lastError ?? '');
  return html`${reason}${codes.map((code) => html` <code>${code}</code>`)}`;
}

function when(iso: string, now: number): SafeHtml {
  return html`<time datetime="${iso}">${formatUtc(iso)}</time> <span class="note">(${relativeTime(iso, now)})</span>`;
}

/** The answer to the test-email form when it cannot queue the email: what was wrong and the way back. */
export function testEmailProblemPage(options: { title: string; message: string; functionKey?: string }): SafeHtml {
  return page({
    title: options.title,
    tone: 'fail',
    body: html`<p>${options.message}</p>
      <p><a href="${withFunctionKey(STATUS_PAGE_PATH, options.functionKey)}">Back to the status page</a></p>`,
  });
}

const NO_ACCOUNTS = html`<p class="notice" role="status">
  No account is configured. Add one to the app setting <code>MAIL_ACCOUNTS</code> (a JSON array; locally the file named by
  <code>MAIL_ACCOUNTS_FILE</code>; in Azure the Bicep parameter <code>mailAccounts</code>), for example
  <code>[{"id": "default", "provider": "microsoft", "tenantId": "…", "clientId": "…", "user": "notifications@contoso.com"}]</code
  >, then restart the app. The README's "Accounts" section lists every field.
</p>`;

/** The account configuration is invalid: the validation error names each bad field, and nothing else works. */
export function configErrorPage(message: string): SafeHtml {
  return page({
    title: 'The account configuration is invalid',
    tone: 'fail',
    body: html`<p>The app cannot send or authorize until <code>MAIL_ACCOUNTS</code> is fixed:</p>
      <pre>${message}</pre>
      <p>
        Fix the setting (Bicep parameter <code>mailAccounts</code>, or <code>MAIL_ACCOUNTS_FILE</code> locally) and restart the
        app.
      </p>`,
  });
}

export function statusPageFailure(): SafeHtml {
  return page({
    title: 'The status page could not be built',
    tone: 'fail',
    body: html`<p>Reading the account status or the deliveries table failed. The function's log has the details.</p>`,
  });
}

const TRANSPORT_TEXT: Record<AccountView['transport'], string> = {
  smtp: 'SMTP',
  graph: 'Microsoft Graph (sendMail)',
  auto: 'SMTP, Microsoft Graph once SMTP AUTH is disabled',
};
