import { providerConfiguration } from '../../oauth/providerClient';
import { need, type CallbackCheck } from './context';
import { START_AGAIN } from './result';

/** The provider's configuration (discovery) is at hand: the checks that follow need its metadata. */
export const providerReachable: CallbackCheck = async (context) => {
  const account = need(context, 'account');
  const config = await providerConfiguration(context.runtime, account).catch((error: unknown) => error as Error);
  if (config instanceof Error) {
    return {
      ok: false,
      code: 'token_exchange_failed',
      status: 502,
      account,
      message: `The provider could not be reached to finish the authorization: ${config.message}`,
      action: `Try again in a moment: ${START_AGAIN}`,
    };
  }
  context.config = config;
  return undefined;
};
