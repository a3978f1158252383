import { app, type HttpRequest, type HttpResponseInit } from '@azure/functions';
import { testEmailProblemPage } from '../shared/admin/adminPage';
import { effectiveState } from '../shared/accounts/accountRules';
import type { AccountState } from '../shared/accounts/accountStatus';
import { stateSentence } from '../shared/admin/stateText';
import { awaitTestOutcome, testEmailWaitMs, testVerdict } from '../shared/admin/testEmailOutcome';
import { STATUS_PAGE_PATH } from '../shared/web/routes';
import { functionKeyOf, withFunctionKey } from '../shared/web/functionKey';
import { bodyKind, readBodyText } from '../shared/web/requestBody';
import { checkSameOrigin } from '../shared/web/sameOrigin';
import { testRecipient } from '../shared/admin/testEmailRequest';
import { sendTestEmail } from '../shared/delivery/sendTestEmail';
import { QUEUES, TABLES } from '../shared/names';
import { getFreshApp } from '../shared/app';
import { htmlResponse } from '../shared/web/html';

const MAX_BODY_BYTES = 8 * 1024;

/** States in which a test email could only wait: the route says why instead of queueing it. */
const CANNOT_SEND = new Set<AccountState>(['not_authorized', 'reauthorization_required', 'configuration_error']);

const PROBLEMS = {
  cross_origin: { status: 403, title: 'Request refused', message: '' },
  unknown_account: { status: 404, title: 'Unknown account', message: 'There is no account with this id.' },
  unsupported_media_type: {
    status: 415,
    title: 'Unsupported request',
    message: 'Send JSON ({"to": "a@example.com"}) or an HTML form.',
  },
  too_large: { status: 413, title: 'Request too large', message: 'The request body is too large for a test email request.' },
  invalid_request: { status: 400, title: 'Test email not sent', message: '' },
  invalid_message: { status: 400, title: 'Test email not sent', message: '' },
  account_cannot_send: { status: 409, title: 'Test email not sent', message: '' },
  internal_error: {
    status: 500,
    title: 'Test email not sent',
    message: "The email could not be queued. The function's log has the details.",
  },
} as const;

/**
 * Queues a test email from an account. The status page's form posts `to` urlencoded and is redirected back to
 * the page (or gets a small HTML page when it cannot); API callers post `{ "to": ... }` and get JSON.
 */
export async function accountTest(request: HttpRequest): Promise<HttpResponseInit> {
  const runtime = await getFreshApp();
  const kind = bodyKind(request);
  const key = functionKeyOf(request);
  const problem = (code: keyof typeof PROBLEMS, message?: string): HttpResponseInit => {
    const { status, title, message: standard } = PROBLEMS[code];
    const reasons = message ?? standard;
    return kind === 'form'
      ? htmlResponse(status, testEmailProblemPage({ title, message: reasons, functionKey: key }))
      : { status, jsonBody: { error: code, reasons }, headers: { 'Cache-Control': 'no-store' } };
  };

  const origin = checkSameOrigin(request.headers, runtime.publicBaseUrl);
  if (!origin.ok) return problem('cross_origin', origin.reason);
  const account = runtime.accounts.find((a) => a.id === request.params.id);
  if (!account) return problem('unknown_account');
  if (kind === 'other') return problem('unsupported_media_type');
  const body = await readBodyText(request, MAX_BODY_BYTES);
  if (body.tooLarge) return problem('too_large');
  const recipient = testRecipient(kind, body.text);
  if (!recipient.ok) return problem('invalid_request', recipient.reasons);

  try {
    const status = await runtime.accountStatus.get(account.id);
    const state = effectiveState(status, Date.now());
    const appOnlyFirstToken = account.flow === 'client_credentials' && state === 'not_authorized';
    if (CANNOT_SEND.has(state) && !appOnlyFirstToken) {
      // Queueing it would only say "queued" while nothing can go out: say why instead.
      return problem('account_cannot_send', stateSentence(state, account, status, Date.now()));
    }
    const result = await sendTestEmail(runtime.delivery, account, recipient.to);
    if (!result.ok) return problem('invalid_message', `The address is not usable: ${result.reasons}`);
    // The verdict, not "queued": the send path usually answers within seconds.
    const verdict = testVerdict(
      result.id,
      await awaitTestOutcome(runtime.delivery.ledger, result.id, testEmailWaitMs(runtime.env)),
    );
    if (kind === 'form') {
      // Post/redirect/get: the page shows the verdict for this id, and a reload does not queue a second email.
      const location = `${withFunctionKey(STATUS_PAGE_PATH, key, { sent: result.id })}#account-${account.id}`;
      return { status: 303, headers: { Location: location, 'Cache-Control': 'no-store' } };
    }
    const note =
      state === 'ready' ? {} : { note: `The account is ${state}: ${stateSentence(state, account, status, Date.now())}` };
    return {
      status: verdict.status === 'sent' ? 200 : 202,
      jsonBody: {
        id: result.id,
        account: account.id,
        accountState: state,
        ...note,
        verdict,
        outcome: {
          ledger: `table ${TABLES.deliveries}, message id ${result.id}`,
          results: `queue ${QUEUES.results}`,
          statusPage: `${runtime.publicBaseUrl}${STATUS_PAGE_PATH}`,
        },
      },
      headers: { 'Cache-Control': 'no-store' },
    };
  } catch (error) {
    runtime.log.error('admin.test_email_failed', { account: account.id, error });
    return problem('internal_error');
  }
}

app.http('accountTest', { methods: ['POST'], authLevel: 'function', route: 'accounts/{id}/test', handler: accountTest });
