import { authRequestTable } from '../startAuthorization';
import { need, type CallbackCheck } from './context';
import { providerErrorFields } from './providerError';
import { failure, START_AGAIN, type AuthorizationFailure } from './result';

/** The response answers an authorization started here, not used before and not expired; then it is consumed. */

/** No state: not an authorization response, unless it is Microsoft's answer to an admin consent request. */
export const stateIsPresent: CallbackCheck = (context) => {
  const { query } = context;
  const state = query.get('state');
  if (state) {
    context.state = state;
    return undefined;
  }
  if (query.has('admin_consent')) {
    const granted = query.get('admin_consent')?.toLowerCase() === 'true';
    return {
      ok: false,
      code: 'admin_consent_returned',
      status: granted ? 200 : 400,
      message: granted ? 'The tenant administrator granted consent for the app.' : 'The administrator consent was not granted.',
      action: granted
        ? `Now authorize the mailbox: ${START_AGAIN}`
        : 'Ask a tenant administrator to grant consent, then authorize the mailbox.',
      ...providerErrorFields(query),
    };
  }
  return failure(
    'state_missing',
    400,
    undefined,
    'This request has no state parameter, so it cannot belong to an authorization started here.',
    START_AGAIN,
  );
};

export const stateIsKnown: CallbackCheck = async (context) => {
  const state = need(context, 'state');
  const table = authRequestTable(context.runtime);
  context.table = table;
  const request = state.length <= 512 ? await table.find(state) : undefined;
  if (request) {
    context.request = request;
    return undefined;
  }
  return failure(
    'state_unknown',
    400,
    undefined,
    'This link does not belong to any authorization started here (unknown state). It may have been altered, or it expired long ago and was removed.',
    START_AGAIN,
  );
};

export const stateIsUnused: CallbackCheck = (context) => (need(context, 'request').usedAt ? stateUsed() : undefined);

export const stateIsUnexpired: CallbackCheck = (context) => {
  if (!need(context, 'table').isExpired(need(context, 'request'))) return undefined;
  return failure(
    'state_expired',
    400,
    undefined,
    'This authorization took too long: it must be finished within 10 minutes of starting it.',
    START_AGAIN,
  );
};

/** From here on the request is consumed, whatever the outcome: a response is never processed twice. */
export const consumeState: CallbackCheck = async (context) =>
  (await need(context, 'table').markUsed(need(context, 'request'))) ? undefined : stateUsed();

function stateUsed(): AuthorizationFailure {
  return failure(
    'state_used',
    400,
    undefined,
    'This authorization response was already used. Each one works only once (reloading this page or using the back button sends it again).',
    'If the mailbox is not shown as ready on the admin page, start the authorization again.',
  );
}
