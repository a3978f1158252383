import { app, type HttpRequest, type HttpResponseInit } from '@azure/functions';
import { configErrorPage, statusPage, statusPageFailure } from '../shared/admin/adminPage';
import { ConfigError } from '../shared/errors';
import { testVerdict } from '../shared/admin/testEmailOutcome';
import { STATUS_PAGE_ROUTE } from '../shared/web/routes';
import { functionKeyOf } from '../shared/web/functionKey';
import { accountQueryFrom, loadAccountPage } from '../shared/admin/accountPage';
import { accountManagement, accountsOverview } from '../shared/admin/accountsTable';
import { getFreshApp } from '../shared/app';
import { htmlResponse } from '../shared/web/html';
import { RELAY_CONTAINERS } from '../shared/names';
import { readRelayActivity } from '../shared/relay/relayActivity';

const TEST_ID = /^test-[a-z0-9-]{1,40}-[0-9TZ]{1,24}$/;

/**
 * The status page: counts by state, search and paging over all accounts (MAIL_ACCOUNTS and run-time ones), a
 * form to add one, the audit trail; then a card per account of this page with its state, token, last error and
 * last day's counts, Authorize, a test form, and for run-time accounts edit, pause and delete.
 */
export async function admin(request: HttpRequest): Promise<HttpResponseInit> {
  let runtime;
  try {
    runtime = await getFreshApp();
  } catch (error) {
    if (error instanceof ConfigError) return htmlResponse(500, configErrorPage(error.message));
    throw error;
  }
  try {
    const now = new Date();
    const key = functionKeyOf(request);
    const [accounts, relays] = await Promise.all([
      loadAccountPage(
        {
          directory: runtime.directory,
          accountStatus: runtime.accountStatus,
          stateIndex: runtime.stateIndex,
          ledger: runtime.delivery.ledger,
          audit: runtime.accountAudit,
          publicBaseUrl: runtime.publicBaseUrl,
        },
        accountQueryFrom(request.query),
        now,
      ),
      // The relay section is extra: a page without it beats no page.
      readRelayActivity(runtime.storage.container(RELAY_CONTAINERS.activity)).catch((error: unknown) => {
        runtime.log.warn('admin.relay_activity_unreadable', { error: (error as Error).message.split('\n')[0] });
        return [];
      }),
    ]);
    const sent = request.query.get('sent') ?? '';
    const testId = TEST_ID.test(sent) ? sent : undefined;
    const verdict = testId ? testVerdict(testId, await runtime.delivery.ledger.get(testId)) : undefined;
    return htmlResponse(
      200,
      statusPage({
        views: accounts.views,
        now: now.getTime(),
        functionKey: key,
        overview: accountsOverview(accounts, key),
        cardExtras: new Map(accounts.entries.map((entry) => [entry.account.id, accountManagement(entry, key)])),
        relays,
        ...(verdict ? { testVerdict: verdict } : {}),
      }),
    );
  } catch (error) {
    runtime.log.error('admin.status_page_failed', { error });
    return htmlResponse(500, statusPageFailure());
  }
}

app.http('admin', { methods: ['GET'], authLevel: 'function', route: STATUS_PAGE_ROUTE, handler: admin });
