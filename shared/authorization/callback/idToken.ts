import * as client from 'openid-client';

/**
 * The id_token is verified by openid-client during the code exchange: signature against the provider's keys
 * (non-repudiation checks are on), issuer, audience, nonce, expiry. A refusal is a `ClientError` with one of
 * these codes; this file says why, in words for the admin.
 */
const ID_TOKEN_CODES = new Set([
  'OAUTH_JWT_CLAIM_COMPARISON_FAILED',
  'OAUTH_JWT_TIMESTAMP_CHECK_FAILED',
  'OAUTH_KEY_SELECTION_FAILED',
  'OAUTH_INVALID_RESPONSE',
  'OAUTH_UNSUPPORTED_OPERATION',
  'OAUTH_PARSE_ERROR',
]);

/** Words for the claim that failed the comparison. */
const CLAIM_PROBLEMS: Readonly<Record<string, string>> = {
  nonce: 'its nonce does not match this authorization request (the code was obtained for another request)',
  aud: 'it was issued for another application (audience mismatch)',
  azp: 'it was issued for another application (audience mismatch)',
  iss: 'it was issued by another provider (issuer mismatch)',
};

/**
 * A short description of why openid-client refused the id_token, or undefined when the failure was elsewhere.
 * openid-client keeps oauth4webapi's error as the `cause` (a class it does not export); that error's own cause
 * names the claim.
 */
export function idTokenProblem(error: unknown): string | undefined {
  if (!(error instanceof client.ClientError) || !error.code || !ID_TOKEN_CODES.has(error.code)) return undefined;
  const cause = (error.cause ?? {}) as { claim?: unknown; cause?: { claim?: unknown }; message?: unknown };
  const claim =
    typeof cause.claim === 'string' ? cause.claim : typeof cause.cause?.claim === 'string' ? cause.cause.claim : undefined;
  const inner = typeof cause.message === 'string' ? cause.message : error.message;
  if (claim !== undefined && Object.hasOwn(CLAIM_PROBLEMS, claim)) return CLAIM_PROBLEMS[claim];
  if (error.code === 'OAUTH_JWT_TIMESTAMP_CHECK_FAILED') return 'it has expired or is not yet valid';
  if (/signature/i.test(inner)) return 'its signature is not valid';
  if (error.code === 'OAUTH_KEY_SELECTION_FAILED') return 'it is signed with a key the provider does not publish';
  return `it is not a valid id_token (${error.code})`;
}
