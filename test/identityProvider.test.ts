import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { decodeJwt, exportJWK, generateKeyPair } from 'jose';
import * as client from 'openid-client';
import { startIdentityProvider, type IdentityProvider } from '../local/peers/identity/identityProvider';
import { driveLogin } from './support/driveLogin';

const CALLBACK = 'http://127.0.0.1:7071/api/oauth/callback';
const ALICE = { id: 'user-alice', email: 'alice@contoso.test', name: 'Alice Example', password: 'alice-pw' };
const MICROSOFT_SCOPE = 'openid profile email offline_access https://outlook.office.com/SMTP.Send';
const GOOGLE_SCOPE = 'openid email https://mail.google.com/';
const insecure = { execute: [client.allowInsecureRequests] };

let idp: IdentityProvider;
let clientKey: client.CryptoKey;

before(async () => {
  const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true });
  clientKey = privateKey;
  idp = await startIdentityProvider({
    clients: [
      { clientId: 'web-app', clientSecret: 'web-secret', redirectUris: [CALLBACK] },
      { clientId: 'post-app', clientSecret: 'post-secret', authMethod: 'client_secret_post', redirectUris: [CALLBACK] },
      {
        clientId: 'jwt-app',
        redirectUris: [CALLBACK],
        jwks: { keys: [{ ...(await exportJWK(publicKey)), alg: 'ES256' }] },
        grantTypes: ['authorization_code', 'refresh_token', 'client_credentials'],
      },
      { clientId: 'daemon', clientSecret: 'daemon-secret', grantTypes: ['client_credentials'] },
    ],
    users: [ALICE],
    appRoles: ['SMTP.SendAsApp'],
  });
});

after(() => idp.stop());

function configFor(clientId: string): Promise<client.Configuration> {
  const auth = {
    'web-app': client.ClientSecretBasic('web-secret'),
    'post-app': client.ClientSecretPost('post-secret'),
    'jwt-app': client.PrivateKeyJwt(clientKey),
    daemon: client.ClientSecretBasic('daemon-secret'),
  }[clientId];
  return client.discovery(new URL(idp.issuer), clientId, undefined, auth, insecure);
}

/** Runs the whole code flow the way the app's authorize + callback functions do. */
async function signIn(
  config: client.Configuration,
  params: Record<string, string>,
  opts: { denyConsent?: boolean; tamper?: (callbackUrl: URL) => void } = {},
) {
  const verifier = client.randomPKCECodeVerifier();
  const state = client.randomState();
  const nonce = client.randomNonce();
  const url = client.buildAuthorizationUrl(config, {
    redirect_uri: CALLBACK,
    code_challenge: await client.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    state,
    nonce,
    ...params,
  });
  const { callbackUrl } = await driveLogin(url.href, { login: ALICE.email, password: ALICE.password }, opts);
  const callback = new URL(callbackUrl);
  const tokens = await client.authorizationCodeGrant(config, callback, {
    pkceCodeVerifier: verifier,
    expectedState: state,
    expectedNonce: nonce,
  });
  return { callback, tokens, nonce };
}

describe('identity provider', () => {
  test('publishes a discovery document', async () => {
    const config = await configFor('web-app');
    const metadata = config.serverMetadata();
    assert.equal(metadata.issuer, idp.issuer);
    assert.deepEqual(metadata.code_challenge_methods_supported, ['S256']);
    assert.equal(metadata.authorization_response_iss_parameter_supported, true);
    assert.ok(metadata.grant_types_supported?.includes('client_credentials'));
    assert.ok(metadata.revocation_endpoint);
    assert.ok(metadata.token_endpoint_auth_methods_supported?.includes('private_key_jwt'));
  });

  test('Microsoft-style sign-in: iss on the callback, id_token claims, refresh token, resource audience', async () => {
    const config = await configFor('web-app');
    const before = idp.counters.authorizations;
    const { callback, tokens, nonce } = await signIn(config, { scope: MICROSOFT_SCOPE });

    assert.equal(callback.origin + callback.pathname, CALLBACK);
    assert.equal(callback.searchParams.get('iss'), idp.issuer);
    assert.equal(idp.counters.authorizations, before + 1);

    const claims = tokens.claims();
    assert.ok(claims);
    assert.equal(claims.sub, ALICE.id);
    assert.equal(claims.email, ALICE.email);
    assert.equal(claims.preferred_username, ALICE.email);
    assert.equal(claims.name, ALICE.name);
    assert.equal(claims.nonce, nonce);
    assert.equal(claims.aud, 'web-app');

    assert.ok(tokens.refresh_token, 'offline_access without prompt=consent still yields a refresh token');
    assert.equal(tokens.scope, 'https://outlook.office.com/SMTP.Send');

    const verified = await idp.verifyAccessToken(tokens.access_token);
    assert.ok(verified);
    assert.equal(verified.sub, ALICE.id);
    assert.equal(verified.email, ALICE.email);
    assert.equal(verified.clientId, 'web-app');
    assert.equal(verified.scope, 'https://outlook.office.com/SMTP.Send');
    assert.equal(verified.aud, 'https://outlook.office.com');
    assert.ok(verified.exp > Date.now() / 1000);
  });

  test('Google-style sign-in: access_type=offline yields a refresh token (client_secret_post)', async () => {
    const config = await configFor('post-app');
    const { tokens } = await signIn(config, { scope: GOOGLE_SCOPE, access_type: 'offline', prompt: 'consent' });
    assert.ok(tokens.refresh_token);
    assert.equal(tokens.claims()?.email, ALICE.email);
    const verified = await idp.verifyAccessToken(tokens.access_token);
    assert.equal(verified?.aud, 'https://mail.google.com');
    assert.equal(verified?.scope, 'https://mail.google.com/');
  });

  test('prompt=select_account and login_hint are accepted', async () => {
    const config = await configFor('web-app');
    const { tokens } = await signIn(config, { scope: MICROSOFT_SCOPE, prompt: 'select_account', login_hint: ALICE.email });
    assert.equal(tokens.claims()?.sub, ALICE.id);
    assert.ok(tokens.refresh_token);
  });

  test('no refresh token without offline access', async () => {
    const config = await configFor('web-app');
    const { tokens } = await signIn(config, { scope: 'openid email https://outlook.office.com/SMTP.Send' });
    assert.equal(tokens.refresh_token, undefined);
  });

  test('PKCE is required', async () => {
    const config = await configFor('web-app');
    const url = client.buildAuthorizationUrl(config, { redirect_uri: CALLBACK, scope: 'openid', state: 's' });
    const { callbackUrl } = await driveLogin(url.href, ALICE_LOGIN);
    const callback = new URL(callbackUrl);
    assert.equal(callback.searchParams.get('error'), 'invalid_request');
    assert.match(callback.searchParams.get('error_description') ?? '', /PKCE/);
  });

  test('cancel on the consent page returns access_denied with iss', async () => {
    const config = await configFor('web-app');
    await assert.rejects(signIn(config, { scope: MICROSOFT_SCOPE }, { denyConsent: true }), (error: unknown) => {
      assert.ok(error instanceof client.AuthorizationResponseError);
      assert.equal(error.error, 'access_denied');
      return true;
    });
  });

  test('a wrong password is refused', async () => {
    const config = await configFor('web-app');
    const url = client.buildAuthorizationUrl(config, {
      redirect_uri: CALLBACK,
      scope: 'openid',
      code_challenge: await client.calculatePKCECodeChallenge(client.randomPKCECodeVerifier()),
      code_challenge_method: 'S256',
    });
    await assert.rejects(driveLogin(url.href, { login: ALICE.email, password: 'nope' }), /sign-in rejected/);
  });

  test('refresh tokens rotate and a rotated one is refused', async () => {
    const config = await configFor('web-app');
    const { tokens } = await signIn(config, { scope: MICROSOFT_SCOPE });
    const first = tokens.refresh_token;
    assert.ok(first);

    const refreshed = await client.refreshTokenGrant(config, first);
    assert.ok(refreshed.refresh_token);
    assert.notEqual(refreshed.refresh_token, first);
    assert.equal(refreshed.scope, 'https://outlook.office.com/SMTP.Send');
    assert.ok(await idp.verifyAccessToken(refreshed.access_token));

    // Microsoft clients may send the scope again on refresh.
    const again = await client.refreshTokenGrant(config, refreshed.refresh_token, { scope: MICROSOFT_SCOPE });
    assert.ok(again.refresh_token);

    await assert.rejects(client.refreshTokenGrant(config, first), isOAuthError('invalid_grant'));
  });

  test('revokeGrantsOf: refresh fails with invalid_grant and access tokens stop verifying', async () => {
    const config = await configFor('web-app');
    const { tokens } = await signIn(config, { scope: MICROSOFT_SCOPE });
    assert.ok(tokens.refresh_token);
    assert.ok(await idp.verifyAccessToken(tokens.access_token));

    await idp.revokeGrantsOf(ALICE.id);

    assert.equal(await idp.verifyAccessToken(tokens.access_token), undefined);
    await assert.rejects(client.refreshTokenGrant(config, tokens.refresh_token), isOAuthError('invalid_grant'));
    // A fresh sign-in works again.
    const { tokens: renewed } = await signIn(config, { scope: MICROSOFT_SCOPE });
    assert.ok(renewed.refresh_token);
  });

  test('token endpoint outages, scripted errors and tampered responses', async (t) => {
    const config = await configFor('web-app');
    const { tokens } = await signIn(config, { scope: MICROSOFT_SCOPE });
    const refreshToken = tokens.refresh_token;
    assert.ok(refreshToken);
    t.after(() => {
      idp.setTokenEndpoint('normal');
      idp.onTokenResponse();
    });

    const before = idp.counters.tokenRequestsByGrant.refresh_token ?? 0;
    idp.setTokenEndpoint('down');
    // openid-client only parses OAuth error bodies on 400/401; a 503 is a ClientError whose
    // cause is the Response.
    await assert.rejects(client.refreshTokenGrant(config, refreshToken), (error: unknown) => {
      assert.ok(error instanceof client.ClientError);
      assert.equal(error.code, 'OAUTH_RESPONSE_IS_NOT_CONFORM');
      assert.ok(error.cause instanceof Response);
      assert.equal(error.cause.status, 503);
      return true;
    });
    assert.equal(idp.counters.tokenRequestsByGrant.refresh_token, before + 1);

    idp.setTokenEndpoint('reset');
    // A connection closed without an answer: fetch fails on the socket, no HTTP status at all.
    await assert.rejects(client.refreshTokenGrant(config, refreshToken), (error: unknown) => {
      assert.ok(error instanceof TypeError, String(error));
      assert.equal((error.cause as { code?: string } | undefined)?.code, 'UND_ERR_SOCKET');
      return true;
    });
    assert.equal(idp.counters.tokenRequestsByGrant.refresh_token, before + 2, 'the request reached the provider');

    idp.setTokenEndpoint({
      status: 400,
      body: {
        error: 'invalid_grant',
        error_description: 'AADSTS700082: The refresh token has expired due to inactivity.',
        error_codes: [700082],
      },
    });
    await assert.rejects(client.refreshTokenGrant(config, refreshToken), (error: unknown) => {
      assert.ok(error instanceof client.ResponseBodyError);
      assert.equal(error.error, 'invalid_grant');
      assert.match(error.error_description ?? '', /^AADSTS700082:/);
      assert.deepEqual(error.cause.error_codes, [700082]);
      return true;
    });

    // Nothing reached the provider while it was scripted: the refresh token is still good.
    idp.setTokenEndpoint('normal');
    const refreshed = await client.refreshTokenGrant(config, refreshToken);
    assert.ok(refreshed.access_token);

    const forgedNonce = await idp.signJwt({ sub: ALICE.id, aud: 'web-app', nonce: 'not-the-nonce' });
    idp.onTokenResponse((body) => ({ ...body, id_token: forgedNonce }));
    await assert.rejects(signIn(config, { scope: MICROSOFT_SCOPE }), isClaimMismatch('nonce'));

    // Re-sign the genuine id_token with only the audience changed.
    idp.onTokenResponse(async (body) => ({
      ...body,
      id_token: await idp.signJwt({ ...decodeJwt(String(body.id_token)), aud: 'someone-else' }),
    }));
    await assert.rejects(signIn(config, { scope: MICROSOFT_SCOPE }), isClaimMismatch('aud'));
  });

  test('client_credentials: a JWT access token with aud and roles', async () => {
    const config = await configFor('daemon');
    const before = idp.counters.tokenRequestsByGrant.client_credentials ?? 0;
    const tokens = await client.clientCredentialsGrant(config, { scope: 'https://outlook.office365.com/.default' });
    assert.equal(idp.counters.tokenRequestsByGrant.client_credentials, before + 1);
    assert.equal(tokens.refresh_token, undefined);

    const payload = decodeJwt(tokens.access_token);
    assert.equal(payload.aud, 'https://outlook.office365.com');
    assert.deepEqual(payload.roles, ['SMTP.SendAsApp']);
    assert.equal(payload.iss, idp.issuer);
    assert.equal(payload.client_id, 'daemon');

    const verified = await idp.verifyAccessToken(tokens.access_token);
    assert.ok(verified);
    assert.equal(verified.sub, 'daemon');
    assert.equal(verified.clientId, 'daemon');
    assert.deepEqual(verified.roles, ['SMTP.SendAsApp']);
    assert.equal(verified.aud, 'https://outlook.office365.com');
  });

  test('private_key_jwt client authentication', async () => {
    const config = await configFor('jwt-app');
    const app = await client.clientCredentialsGrant(config, { scope: 'https://outlook.office365.com/.default' });
    assert.equal(decodeJwt(app.access_token).client_id, 'jwt-app');

    const { tokens } = await signIn(config, { scope: MICROSOFT_SCOPE });
    assert.ok(tokens.refresh_token);
    const refreshed = await client.refreshTokenGrant(config, tokens.refresh_token);
    assert.ok(refreshed.access_token);

    const wrongKey = (await generateKeyPair('ES256')).privateKey;
    const impostor = await client.discovery(new URL(idp.issuer), 'jwt-app', undefined, client.PrivateKeyJwt(wrongKey), insecure);
    await assert.rejects(
      client.clientCredentialsGrant(impostor, { scope: 'https://outlook.office365.com/.default' }),
      isOAuthError('invalid_client'),
    );
  });

  test('verifyAccessToken refuses garbage, revoked and expired tokens', async () => {
    assert.equal(await idp.verifyAccessToken('garbage'), undefined);
    assert.equal(await idp.verifyAccessToken('a.b.c'), undefined);
    assert.equal(await idp.verifyAccessToken(await idp.signJwt({ sub: 'x', client_id: 'daemon' })), undefined);

    const config = await configFor('web-app');
    const { tokens } = await signIn(config, { scope: MICROSOFT_SCOPE });
    assert.ok(await idp.verifyAccessToken(tokens.access_token));
    await client.tokenRevocation(config, tokens.access_token);
    assert.equal(await idp.verifyAccessToken(tokens.access_token), undefined);

    const shortLived = await startIdentityProvider({
      clients: [{ clientId: 'daemon', clientSecret: 'daemon-secret', grantTypes: ['client_credentials'] }],
      users: [],
      accessTokenTtlSeconds: 1,
    });
    try {
      const daemon = await client.discovery(
        new URL(shortLived.issuer),
        'daemon',
        undefined,
        client.ClientSecretBasic('daemon-secret'),
        insecure,
      );
      const jwt = await client.clientCredentialsGrant(daemon, { scope: 'https://outlook.office365.com/.default' });
      const opaque = await client.clientCredentialsGrant(daemon);
      assert.ok(await shortLived.verifyAccessToken(jwt.access_token));
      assert.ok(await shortLived.verifyAccessToken(opaque.access_token));
      await sleep(2100);
      assert.equal(await shortLived.verifyAccessToken(jwt.access_token), undefined);
      assert.equal(await shortLived.verifyAccessToken(opaque.access_token), undefined);
    } finally {
      await shortLived.stop();
    }
  });
});

const ALICE_LOGIN = { login: ALICE.email, password: ALICE.password };

function isOAuthError(code: string) {
  return (error: unknown) => {
    assert.ok(error instanceof client.ResponseBodyError, String(error));
    assert.equal(error.error, code);
    return true;
  };
}

function isClaimMismatch(claim: string) {
  return (error: unknown) => {
    assert.ok(error instanceof client.ClientError, String(error));
    assert.equal(error.code, 'OAUTH_JWT_CLAIM_COMPARISON_FAILED');
    assert.ok(error.cause instanceof Error);
    assert.match(error.cause.message, new RegExp(`"${claim}"`));
    return true;
  };
}
