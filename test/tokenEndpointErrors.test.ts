import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { AuthorizationResponseError, ClientError, ResponseBodyError, WWWAuthenticateChallengeError } from 'openid-client';
import { classifyTokenEndpointError, providerErrorLabel } from '../shared/oauth/tokenEndpointErrors';

/** A Microsoft identity platform v2 error body, shaped as the token endpoint sends it. */
function entra(error: string, codes: number[], description: string, extra: Record<string, unknown> = {}) {
  const trace =
    'Trace ID: 0c1d2e3f-0000-4000-8000-000000000001\r\nCorrelation ID: 0c1d2e3f-0000-4000-8000-000000000002\r\nTimestamp: 2026-11-20 08:15:02Z';
  return {
    error,
    error_description: `${description}\r\n${trace}`,
    error_codes: codes,
    timestamp: '2026-11-20 08:15:02Z',
    trace_id: '0c1d2e3f-0000-4000-8000-000000000001',
    correlation_id: '0c1d2e3f-0000-4000-8000-000000000002',
    error_uri: `https://login.microsoftonline.com/error?code=${codes.at(-1)}`,
    ...extra,
  };
}

/** What openid-client throws for a 4xx token endpoint answer with that JSON body. */
function responseBodyError(body: Record<string, unknown>, status: number): ResponseBodyError {
  const response = new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json' } });
  return new (ResponseBodyError as unknown as new (m: string, o: object) => ResponseBodyError)(
    'server responded with an error in the response body',
    {
      cause: body,
      response,
    },
  );
}

describe('Microsoft Entra ID', () => {
  const cases: Array<[string, Record<string, unknown>, number, 'reauthorize' | 'config' | 'transient', string, RegExp]> = [
    [
      'a refresh token unused for 90 days',
      entra(
        'invalid_grant',
        [700082],
        'AADSTS700082: The refresh token has expired due to inactivity. The token was issued on 2026-08-01T10:00:00.0000000Z and was inactive for 90.00:00:00.',
      ),
      400,
      'reauthorize',
      'AADSTS700082',
      /not used for 90 days/,
    ],
    [
      'a Conditional Access sign-in frequency check',
      entra(
        'invalid_grant',
        [70043],
        'AADSTS70043: The refresh token has expired or is invalid due to sign-in frequency checks by conditional access.',
      ),
      400,
      'reauthorize',
      'AADSTS70043',
      /Conditional Access sign-in frequency/,
    ],
    [
      'MFA now required by Conditional Access',
      entra(
        'invalid_grant',
        [50076],
        "AADSTS50076: Due to a configuration change made by your administrator, or because you moved to a new location, you must use multi-factor authentication to access '00000002-0000-0ff1-ce00-000000000000'.",
        { suberror: 'basic_action' },
      ),
      400,
      'reauthorize',
      'AADSTS50076',
      /multi-factor authentication/,
    ],
    [
      'MFA registration required (interaction_required)',
      entra('interaction_required', [50079], 'AADSTS50079: The user is required to use multi-factor authentication.', {
        suberror: 'basic_action',
      }),
      400,
      'reauthorize',
      'AADSTS50079',
      /register for multi-factor/,
    ],
    [
      'a Conditional Access block',
      entra(
        'invalid_grant',
        [53003],
        'AADSTS53003: Access has been blocked by Conditional Access policies. The access policy does not allow token issuance.',
      ),
      400,
      'reauthorize',
      'AADSTS53003',
      /Conditional Access policy blocked/,
    ],
    [
      'a changed password / revoked sessions',
      entra(
        'invalid_grant',
        [50173],
        'AADSTS50173: The provided grant has expired due to it being revoked, a fresh auth token is needed. The user might have changed or reset their password.',
      ),
      400,
      'reauthorize',
      'AADSTS50173',
      /password was changed or the user's sessions were revoked/,
    ],
    [
      'a code redeemed twice (70002 comes first, 54005 decides)',
      entra(
        'invalid_grant',
        [70002, 54005],
        'AADSTS70002: Error validating credentials. AADSTS54005: OAuth2 Authorization code was already redeemed, please retry with a new valid code or use an existing refresh token.',
      ),
      400,
      'reauthorize',
      'AADSTS54005',
      /already used/,
    ],
    [
      'an expired code or refresh token',
      entra(
        'invalid_grant',
        [70008],
        'AADSTS70008: The provided authorization code or refresh token has expired due to inactivity. Send a new interactive authorization request for this user and resource.',
      ),
      400,
      'reauthorize',
      'AADSTS70008',
      /has expired/,
    ],
    [
      'a wrong client secret',
      entra(
        'invalid_client',
        [7000215],
        "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '5f0e5a52-0000-4000-8000-00000000c1d0'.",
      ),
      401,
      'config',
      'AADSTS7000215',
      /client secret is wrong.*Value \(not its Secret ID\)/,
    ],
    [
      'an expired client secret',
      entra(
        'invalid_client',
        [7000222],
        "AADSTS7000222: The provided client secret keys for app '5f0e5a52-0000-4000-8000-00000000c1d0' are expired. Visit the Azure portal to create new keys for your app: https://aka.ms/NewClientSecret, or consider using certificate credentials for added security: https://aka.ms/certCreds.",
      ),
      401,
      'config',
      'AADSTS7000222',
      /client secret has expired.*managed identity/,
    ],
    [
      'an app registration that does not exist in the tenant',
      entra(
        'unauthorized_client',
        [700016],
        "AADSTS700016: Application with identifier '5f0e5a52-0000-4000-8000-00000000c1d0' was not found in the directory 'Contoso'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant.",
      ),
      400,
      'config',
      'AADSTS700016',
      /was not found in the tenant/,
    ],
    [
      'missing consent (invalid_grant, but a configuration problem)',
      entra(
        'invalid_grant',
        [65001],
        "AADSTS65001: The user or administrator has not consented to use the application with ID '5f0e5a52-0000-4000-8000-00000000c1d0' named 'oauth-outbox'. Send an interactive authorization request for this user and resource.",
        { suberror: 'consent_required' },
      ),
      400,
      'config',
      'AADSTS65001',
      /admin consent/,
    ],
    [
      'no federated identity credential for the managed identity',
      entra(
        'invalid_client',
        [70021],
        "AADSTS70021: No matching federated identity record found for presented assertion. Assertion Issuer: 'https://login.microsoftonline.com/00000000-0000-4000-8000-00000000a11c/v2.0'. Assertion Subject: '00000000-0000-4000-8000-0000000000aa'. Assertion Audience: 'api://AzureADTokenExchange'.",
      ),
      401,
      'config',
      'AADSTS70021',
      /federated identity credential/,
    ],
  ];

  for (const [what, body, status, kind, providerCode, reason] of cases) {
    test(`${kind}: ${what} (${providerCode})`, () => {
      const failure = classifyTokenEndpointError(responseBodyError(body, status), { provider: 'microsoft' });
      assert.equal(failure.kind, kind);
      assert.equal(failure.code, body.error);
      assert.equal(failure.providerCode, providerCode);
      assert.equal(failure.status, status);
      assert.match(failure.reason, reason);
      assert.ok(!failure.reason.includes('Trace ID'), 'the provider text is not copied');
    });
  }

  test('reads the AADSTS number from the description when error_codes is absent (older endpoints)', () => {
    const failure = classifyTokenEndpointError({
      error: 'invalid_grant',
      error_description: 'AADSTS700082: The refresh token has expired due to inactivity.',
    });
    assert.equal(failure.providerCode, 'AADSTS700082');
    assert.equal(providerErrorLabel(failure), 'invalid_grant AADSTS700082');
  });

  test('an AADSTS code it does not know falls back on the OAuth error', () => {
    const failure = classifyTokenEndpointError(
      responseBodyError(entra('invalid_grant', [9999999], 'AADSTS9999999: Something new.'), 400),
    );
    assert.equal(failure.kind, 'reauthorize');
    assert.equal(failure.providerCode, 'AADSTS9999999');
  });

  test('never decides on the description text', () => {
    const failure = classifyTokenEndpointError({
      error: 'temporarily_unavailable',
      error_description: 'AADSTS: the refresh token has expired due to inactivity',
    });
    assert.equal(failure.kind, 'transient');
  });
});

describe('Google', () => {
  const expiredOrRevoked = { error: 'invalid_grant', error_description: 'Token has been expired or revoked.' };

  test('reauthorize: an expired or revoked refresh token', () => {
    const failure = classifyTokenEndpointError(responseBodyError(expiredOrRevoked, 400), {
      provider: 'google',
      authorizedAt: new Date(Date.now() - 40 * 24 * 3600 * 1000),
    });
    assert.equal(failure.kind, 'reauthorize');
    assert.equal(failure.code, 'invalid_grant');
    assert.equal(failure.providerCode, undefined);
    assert.doesNotMatch(failure.reason, /Testing/);
  });

  test('reauthorize, with the "Testing" hint, when the grant dies about 7 days after consent', () => {
    const now = Date.parse('2026-11-20T09:00:00Z');
    const failure = classifyTokenEndpointError(responseBodyError(expiredOrRevoked, 400), {
      provider: 'google',
      authorizedAt: '2026-11-13T08:30:00Z',
      now,
    });
    assert.equal(failure.kind, 'reauthorize');
    assert.match(failure.reason, /publishing status is "Testing".*In production/);
  });

  test('config: a deleted OAuth client', () => {
    const failure = classifyTokenEndpointError(
      responseBodyError({ error: 'deleted_client', error_description: 'The OAuth client was deleted.' }, 401),
      { provider: 'google' },
    );
    assert.equal(failure.kind, 'config');
    assert.equal(failure.code, 'deleted_client');
  });

  test('config: an unknown client or wrong secret', () => {
    const failure = classifyTokenEndpointError(
      responseBodyError({ error: 'invalid_client', error_description: 'The OAuth client was not found.' }, 401),
      { provider: 'google' },
    );
    assert.equal(failure.kind, 'config');
    assert.match(failure.reason, /client secret is wrong or expired/);
  });
});

describe('transport and server trouble', () => {
  test('transient: a refused connection', () => {
    const error = new TypeError('fetch failed', {
      cause: Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:443'), { code: 'ECONNREFUSED' }),
    });
    const failure = classifyTokenEndpointError(error);
    assert.deepEqual([failure.kind, failure.code], ['transient', 'network_error']);
    assert.match(failure.reason, /ECONNREFUSED/);
  });

  test('transient: a timeout', () => {
    const error = new ClientError('operation timed out', {
      cause: new DOMException('The operation was aborted due to timeout', 'TimeoutError'),
    });
    (error as { code?: string }).code = 'OAUTH_TIMEOUT';
    assert.deepEqual([classifyTokenEndpointError(error).kind, classifyTokenEndpointError(error).code], ['transient', 'timeout']);
  });

  test('transient: HTTP 503 and 429 without an OAuth body', () => {
    for (const status of [503, 429]) {
      const error = new ClientError('unexpected HTTP response status code', {
        cause: new Response('<html>busy</html>', { status }),
      });
      (error as { code?: string }).code = 'OAUTH_RESPONSE_IS_NOT_CONFORM';
      const failure = classifyTokenEndpointError(error);
      assert.deepEqual([failure.kind, failure.code, failure.status], ['transient', `http_${status}`, status]);
    }
  });

  test('transient: temporarily_unavailable and server_error', () => {
    for (const error of ['temporarily_unavailable', 'server_error']) {
      assert.equal(classifyTokenEndpointError(responseBodyError({ error }, 400)).kind, 'transient');
    }
  });

  test('config: invalid_client given only in a WWW-Authenticate challenge', () => {
    const response = new Response(null, {
      status: 401,
      headers: { 'www-authenticate': 'Basic realm="token", error="invalid_client"' },
    });
    const error = new (WWWAuthenticateChallengeError as unknown as new (m: string, o: object) => WWWAuthenticateChallengeError)(
      'server responded with a challenge',
      { cause: [{ scheme: 'basic', parameters: { realm: 'token', error: 'invalid_client' } }], response },
    );
    const failure = classifyTokenEndpointError(error);
    assert.deepEqual([failure.kind, failure.code, failure.status], ['config', 'invalid_client', 401]);
  });

  test('reads an authorization error response: its error, and the AADSTS number in its description', () => {
    const error = new (AuthorizationResponseError as unknown as new (m: string, o: object) => AuthorizationResponseError)(
      'authorization response from the server is an error',
      { cause: new URLSearchParams({ error: 'access_denied', error_description: 'AADSTS65004: User declined to consent.' }) },
    );
    const failure = classifyTokenEndpointError(error);
    assert.deepEqual([failure.kind, failure.code, failure.providerCode], ['config', 'access_denied', 'AADSTS65004']);
  });

  test('a ClientError is read through its cause (here a reset connection)', () => {
    const error = new ClientError('something went wrong', {
      cause: Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' }),
    });
    assert.deepEqual(
      [classifyTokenEndpointError(error).kind, classifyTokenEndpointError(error).code],
      ['transient', 'network_error'],
    );
  });

  test('the code exchange words invalid_grant as "start again"', () => {
    const failure = classifyTokenEndpointError({ error: 'invalid_grant' }, { grant: 'authorization_code' });
    assert.match(failure.reason, /Start the authorization again/);
  });
});

test('an error named after an object property is an unknown error, not a crash', () => {
  for (const error of ['constructor', '__proto__', 'toString', 'hasOwnProperty']) {
    const failure = classifyTokenEndpointError({ error, error_codes: [0] }, { provider: 'microsoft' });
    assert.equal(failure.kind, 'config', error);
    assert.equal(failure.code, error);
  }
});
