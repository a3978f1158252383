import { need, type CallbackCheck } from './context';
import { failure, START_AGAIN } from './result';

/** RFC 9207: the response must come from the provider we sent the admin to (defeats mix-up attacks). */
export const issuerMatches: CallbackCheck = (context) => {
  const account = need(context, 'account');
  const metadata = need(context, 'config').serverMetadata();
  const iss = context.query.get('iss');
  const expected = need(context, 'request').issuer;
  if (metadata.issuer !== expected) {
    return failure(
      'issuer_mismatch',
      400,
      account,
      `The account's provider changed since this authorization started (expected issuer ${expected}, now ${metadata.issuer}).`,
      START_AGAIN,
    );
  }
  if (iss === null) {
    if (metadata.authorization_response_iss_parameter_supported === true) {
      return failure(
        'issuer_mismatch',
        400,
        account,
        `The response does not name its issuer, but the provider ${expected} always does. It did not come from that provider.`,
        START_AGAIN,
      );
    }
    return undefined;
  }
  if (iss !== expected) {
    return failure(
      'issuer_mismatch',
      400,
      account,
      `The response names another issuer than the provider this authorization was sent to (expected ${expected}). It was refused: it may be a mix-up attack.`,
      START_AGAIN,
    );
  }
  return undefined;
};
