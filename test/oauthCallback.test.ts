import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { decodeJwt, decodeProtectedHeader, generateKeyPair, SignJWT } from 'jose';
import * as client from 'openid-client';
import { authorize } from '../functions/authorize';
import { TABLES } from '../shared/names';
import { AUTH_REQUEST_TTL_MS, openVerifier, stateKey } from '../shared/authorization/authRequests';
import { checkAppOnlyToken, fetchAppOnlyToken } from '../shared/oauth/clientCredentials';
import { providerConfiguration } from '../shared/oauth/providerClient';
import { authRequestTable } from '../shared/authorization/startAuthorization';
import { refreshTokenSecretName } from '../shared/tokens/tokenStore';
import {
  ALICE,
  BOB,
  CLIENT_ID,
  CLIENT_SECRET,
  MANAGED_IDENTITY_CLIENT_ID,
  searchableParts,
  startAuthorizationBench,
  type AuthorizationBench,
} from './support/authorizationBench';
import { authorizationClient, textOf, type Page } from './support/authorizationClient';
import { HttpRequest } from './support/azureFunctions';

const PUBLIC_BASE_URL = 'http://127.0.0.1:7071';

let bench: AuthorizationBench;
let app: ReturnType<typeof authorizationClient>;

before(async () => {
  bench = await startAuthorizationBench(PUBLIC_BASE_URL);
  app = authorizationClient(bench);
});

after(async () => {
  await bench?.stop();
});

function assertSafePage(page: Page) {
  assert.equal(page.headers.get('content-type'), 'text/html; charset=utf-8');
  assert.equal(page.headers.get('cache-control'), 'no-store');
  assert.equal(page.headers.get('referrer-policy'), 'no-referrer');
  assert.equal(page.headers.get('x-content-type-options'), 'nosniff');
  assert.match(page.headers.get('content-security-policy') ?? '', /default-src 'none'.*frame-ancestors 'none'/);
  assert.doesNotMatch(page.body, /<script/i);
}

/** Refused: the page names the reason, and nothing reached Key Vault or the account status (so it is not marked ready). */
async function assertRefused(page: Page, reference: string, status: number, writesBefore: number) {
  assertSafePage(page);
  assert.equal(page.status, status, textOf(page.body));
  assert.match(page.body, new RegExp(`<code>${reference}</code>`));
  assert.equal(bench.writes(), writesBefore, 'nothing may be written to Key Vault or the account status');
}

async function expireRequest(state: string) {
  await bench.runtime.storage
    .table(TABLES.authRequests)
    .updateEntity(
      { partitionKey: 'authrequest', rowKey: stateKey(state), expiresAt: new Date(Date.now() - 60_000).toISOString() },
      'Merge',
    );
}

describe('authorize', () => {
  test('redirects to the provider with PKCE S256, state, nonce, the account scopes and a login hint', async () => {
    const started = await app.start('mailbox');
    const params = started.authorizeUrl.searchParams;
    assert.equal(started.authorizeUrl.origin, new URL(bench.idp.issuer).origin);
    assert.equal(params.get('client_id'), CLIENT_ID);
    assert.equal(params.get('response_type'), 'code');
    assert.equal(params.get('redirect_uri'), `${PUBLIC_BASE_URL}/api/oauth/callback`);
    assert.equal(params.get('scope'), 'openid email profile offline_access https://outlook.office.com/SMTP.Send');
    assert.equal(params.get('code_challenge_method'), 'S256');
    assert.match(params.get('code_challenge') ?? '', /^[A-Za-z0-9_-]{43}$/);
    assert.match(params.get('state') ?? '', /^[A-Za-z0-9_-]{43}$/);
    assert.match(params.get('nonce') ?? '', /^[A-Za-z0-9_-]{43}$/);
    assert.equal(params.get('login_hint'), ALICE.email);
  });

  test('binds the request to the browser with an HttpOnly, SameSite=Lax cookie, and keeps only hashes in the table', async () => {
    const started = await app.start('mailbox');
    // Plain-http loopback: no __Host- prefix and no Secure (both need https).
    assert.match(started.setCookie, /^oauth-outbox-auth=[A-Za-z0-9_-]{43}; Max-Age=600; Path=\/; HttpOnly; SameSite=Lax$/);
    const row = await authRequestTable(bench.runtime).find(started.state);
    assert.ok(row);
    const stored = JSON.stringify(row);
    assert.ok(!stored.includes(started.browserSecret), 'the cookie value is not stored');
    assert.ok(!stored.includes(started.state), 'the state is stored only as a hash');
    const verifier = openVerifier(row, started.browserSecret);
    assert.ok(verifier && !stored.includes(verifier), 'the verifier is stored encrypted');
    assert.equal(openVerifier(row, 'A'.repeat(43)), undefined, 'another cookie value cannot open it');
    assert.equal(row.issuer, bench.idp.issuer);
    assert.equal(Date.parse(row.expiresAt) - Date.parse(row.createdAt), AUTH_REQUEST_TTL_MS, 'single use for ten minutes');
  });

  test('uses the __Host- cookie prefix with Secure when the public URL is https', async () => {
    const { authCookieHeader } = await import('../shared/authorization/browserCookie');
    assert.match(
      authCookieHeader('https://outbox.example.net', 'x'.repeat(43)),
      /^__Host-oauth-outbox-auth=x{43}; Max-Age=600; Path=\/; Secure; HttpOnly; SameSite=Lax$/,
    );
  });

  test('hides the provider from the Referer of the redirect (the URL may carry the function key)', async () => {
    const response = await authorize(
      new HttpRequest({
        method: 'GET',
        url: `${PUBLIC_BASE_URL}/api/accounts/mailbox/authorize?code=function-key`,
        params: { id: 'mailbox' },
      }),
    );
    const headers = new Headers(response.headers as Record<string, string>);
    assert.equal(response.status, 302);
    assert.equal(headers.get('referrer-policy'), 'no-referrer');
    assert.equal(headers.get('cache-control'), 'no-store');
  });

  test('refuses an unknown account and escapes its name', async () => {
    const response = await authorize(
      new HttpRequest({
        method: 'GET',
        url: `${PUBLIC_BASE_URL}/api/accounts/x/authorize`,
        params: { id: '<img src=x onerror=alert(1)>' },
      }),
    );
    const body = String(response.body);
    bench.outputs.push(body);
    assert.equal(response.status, 404);
    assert.doesNotMatch(body, /<img/);
    assert.match(body, /&lt;img src=x onerror=alert\(1\)&gt;/);
  });

  test('has nothing to authorize for an app-only (client credentials) account', async () => {
    const response = await authorize(
      new HttpRequest({ method: 'GET', url: `${PUBLIC_BASE_URL}/api/accounts/app-only/authorize`, params: { id: 'app-only' } }),
    );
    const body = String(response.body);
    bench.outputs.push(body);
    assert.equal(response.status, 400);
    assert.match(textOf(body), /Nothing to authorize.*app-only token \(client credentials\)/);
  });
});

describe('callback: the happy path', () => {
  test('exchanges the code, stores the tokens in Key Vault and marks the account ready', async () => {
    const issuedBefore = bench.idp.counters.tokenRequests;
    const flowStarted = Date.now();
    const started = await app.start('mailbox');
    const callbackUrl = await app.signIn(started.authorizeUrl, ALICE);
    assert.equal(callbackUrl.searchParams.get('iss'), bench.idp.issuer);
    const page = await app.callback(callbackUrl, started.cookie);

    assertSafePage(page);
    assert.equal(page.status, 200, textOf(page.body));
    const text = textOf(page.body);
    assert.match(text, /Mailbox authorized/);
    assert.match(text, /Contoso notifications \( mailbox \) can now send mail as alice@contoso\.test/);
    assert.match(text, /Signed in as alice@contoso\.test/);
    assert.ok(!page.body.includes(callbackUrl.searchParams.get('code')!), 'the code is not in the page');
    assert.equal(bench.idp.counters.tokenRequests, issuedBefore + 1);

    const refresh = bench.vault.secret(refreshTokenSecretName('mailbox'));
    assert.ok(refresh);
    assert.equal(refresh.contentType, 'oauth-refresh-token');
    assert.equal(bench.vault.secret('mailbox-access-token'), undefined, 'the access token is not a Key Vault secret');
    const record = await bench.runtime.tokenStore.readAccessToken('mailbox');
    assert.ok(record);
    assert.ok(!page.body.includes(refresh.value) && !page.body.includes(record.accessToken), 'no token in the page');
    assert.equal((await bench.idp.verifyAccessToken(record.accessToken))?.email, ALICE.email);
    assert.ok(record.expiresAt > Date.now() + 50 * 60 * 1000);

    const status = await bench.runtime.accountStatus.get('mailbox');
    assert.equal(status?.state, 'ready');
    assert.equal(status?.authorizedUser, ALICE.email);
    assert.equal(status?.authorizedUserId, ALICE.id);
    assert.match(status?.scopes ?? '', /SMTP\.Send/);
    assert.equal(status?.tokenExpiresAt, new Date(record.expiresAt).toISOString());
    const authorizedAt = Date.parse(status?.authorizedAt ?? '');
    assert.ok(authorizedAt >= flowStarted && authorizedAt <= Date.now(), 'authorized during this flow');
    assert.equal(status?.consecutiveFailures, 0);
    assert.equal(status?.lastError, undefined);

    // The stored refresh token works with the account's provider configuration and rotates.
    const config = await providerConfiguration(
      bench.runtime,
      bench.accounts.find((a) => a.id === 'mailbox')!,
    );
    const refreshed = await client.refreshTokenGrant(config, refresh.value);
    assert.ok(refreshed.refresh_token && refreshed.refresh_token !== refresh.value);
  });

  test('authorizes with a certificate: private_key_jwt signed with the key from Key Vault, x5t in the header', async () => {
    const started = await app.start('certificate');
    const assertionsBefore = bench.idp.clientAssertionHeaders.length;
    const page = await app.callback(await app.signIn(started.authorizeUrl, ALICE), started.cookie);
    assert.equal(page.status, 200, textOf(page.body));
    assert.equal((await bench.runtime.accountStatus.get('certificate'))?.state, 'ready');
    const account = bench.accounts.find((a) => a.id === 'certificate')!;
    const thumbprint = account.clientAuth.type === 'certificate' ? account.clientAuth.thumbprint : '';
    const header = bench.idp.clientAssertionHeaders.at(-1);
    assert.equal(bench.idp.clientAssertionHeaders.length, assertionsBefore + 1, 'the code exchange sent one client assertion');
    assert.equal(header?.alg, 'ES256');
    assert.equal(header?.x5t, Buffer.from(thumbprint, 'hex').toString('base64url'), "x5t: the certificate's SHA-1 thumbprint");
    assert.ok(bench.vault.secret(refreshTokenSecretName('certificate')));
  });

  test('two pending authorizations in one browser (two tabs) both complete', async () => {
    const first = await app.start('mailbox');
    const second = await app.start('certificate', first.cookie);
    assert.equal(second.browserSecret, first.browserSecret, 'the browser keeps one binding cookie');
    const url1 = await app.signIn(first.authorizeUrl, ALICE);
    const url2 = await app.signIn(second.authorizeUrl, ALICE);
    assert.equal((await app.callback(url2, second.cookie)).status, 200);
    assert.equal((await app.callback(url1, first.cookie)).status, 200);
  });
});

describe('callback: refusals, one per attack', () => {
  test('refuses a callback without state', async () => {
    const writes = bench.writes();
    const started = await app.start('mailbox');
    const url = await app.signIn(started.authorizeUrl, ALICE);
    url.searchParams.delete('state');
    const page = await app.callback(url, started.cookie);
    await assertRefused(page, 'state_missing', 400, writes);
    assert.match(textOf(page.body), /no state parameter/);
  });

  test('refuses an unknown state', async () => {
    const writes = bench.writes();
    const started = await app.start('mailbox');
    const url = await app.signIn(started.authorizeUrl, ALICE);
    url.searchParams.set('state', client.randomState());
    const tokenRequests = bench.idp.counters.tokenRequests;
    const page = await app.callback(url, started.cookie);
    await assertRefused(page, 'state_unknown', 400, writes);
    assert.equal(bench.idp.counters.tokenRequests, tokenRequests, 'the code is not redeemed');
  });

  test('refuses a replayed state (second use of the same response)', async () => {
    const started = await app.start('mailbox');
    const url = await app.signIn(started.authorizeUrl, ALICE);
    assert.equal((await app.callback(url, started.cookie)).status, 200);
    const writes = bench.writes();
    const tokenRequests = bench.idp.counters.tokenRequests;
    const replay = await app.callback(url, started.cookie);
    await assertRefused(replay, 'state_used', 400, writes);
    assert.equal(bench.idp.counters.tokenRequests, tokenRequests);
    assert.equal((await bench.runtime.accountStatus.get('mailbox'))?.state, 'ready', 'the first authorization stands');
  });

  test('refuses a replayed state even when both uses race', async () => {
    const started = await app.start('mailbox');
    const url = await app.signIn(started.authorizeUrl, ALICE);
    const pages = await Promise.all([app.callback(url, started.cookie), app.callback(url, started.cookie)]);
    assert.deepEqual(pages.map((p) => p.status).sort(), [200, 400]);
    assert.match(pages.find((p) => p.status === 400)!.body, /<code>state_used<\/code>/);
  });

  test('refuses an expired state', async () => {
    const writes = bench.writes();
    const started = await app.start('mailbox');
    const url = await app.signIn(started.authorizeUrl, ALICE);
    await expireRequest(started.state);
    const page = await app.callback(url, started.cookie);
    await assertRefused(page, 'state_expired', 400, writes);
    assert.match(textOf(page.body), /within 10 minutes/);
  });

  test('refuses a callback arriving in another browser (no cookie), and the right browser can still finish', async () => {
    const writes = bench.writes();
    const started = await app.start('mailbox');
    const url = await app.signIn(started.authorizeUrl, ALICE);
    const stranger = await app.callback(url);
    await assertRefused(stranger, 'browser_mismatch', 403, writes);
    assert.match(textOf(stranger.body), /did not start this authorization/);
    assert.equal((await app.callback(url, started.cookie)).status, 200, 'a refused stranger does not burn the request');
  });

  test("refuses a callback arriving in another browser (another browser's cookie)", async () => {
    const writes = bench.writes();
    const victim = await app.start('mailbox');
    const attacker = await app.start('mailbox');
    const url = await app.signIn(victim.authorizeUrl, ALICE);
    const page = await app.callback(url, attacker.cookie);
    await assertRefused(page, 'browser_mismatch', 403, writes);
    assert.match(textOf(page.body), /started in another browser/);
  });

  test('refuses error=access_denied and escapes a hostile error_description', async () => {
    const writes = bench.writes();
    const started = await app.start('mailbox');
    const url = await app.signIn(started.authorizeUrl, ALICE, { denyConsent: true });
    assert.equal(url.searchParams.get('error'), 'access_denied');
    url.searchParams.set('error_description', '<script>alert(document.cookie)</script><img src=x onerror="alert(1)">\'"&');
    const page = await app.callback(url, started.cookie);
    await assertRefused(page, 'provider_error', 400, writes);
    assert.doesNotMatch(page.body, /<script>alert|<img src=x/);
    assert.match(
      page.body,
      /&lt;script&gt;alert\(document\.cookie\)&lt;\/script&gt;&lt;img src=x onerror=&quot;alert\(1\)&quot;&gt;&#39;&quot;&amp;/,
    );
    assert.match(textOf(page.body), /sign-in was cancelled, or the permission to send mail was not granted/);
    assert.match(textOf(page.body), /Provider error access_denied/);
  });

  test('refuses an error named after an object property (constructor, __proto__) as an unknown provider error', async () => {
    for (const error of ['constructor', '__proto__', 'toString']) {
      const writes = bench.writes();
      const started = await app.start('mailbox');
      const url = await app.signIn(started.authorizeUrl, ALICE, { denyConsent: true });
      url.searchParams.set('error', error);
      const page = await app.callback(url, started.cookie);
      await assertRefused(page, 'provider_error', 400, writes);
    }
  });

  test('refuses consent_required and explains that an administrator must approve the app', async () => {
    const started = await app.start('mailbox');
    const url = await app.signIn(started.authorizeUrl, ALICE, { denyConsent: true });
    url.searchParams.set('error', 'access_denied');
    url.searchParams.set('error_description', 'AADSTS65001: The user or administrator has not consented to use the application.');
    const page = await app.callback(url, started.cookie);
    assert.equal(page.status, 403);
    assert.match(textOf(page.body), /Administrator consent needed.*an administrator to approve the app/);
    assert.match(textOf(page.body), /Provider error access_denied AADSTS65001/);
  });

  test('refuses a response naming another issuer (mix-up, RFC 9207) before redeeming the code', async () => {
    const writes = bench.writes();
    const started = await app.start('mailbox');
    const url = await app.signIn(started.authorizeUrl, ALICE);
    url.searchParams.set('iss', 'https://login.evil.example');
    const tokenRequests = bench.idp.counters.tokenRequests;
    const page = await app.callback(url, started.cookie);
    await assertRefused(page, 'issuer_mismatch', 400, writes);
    assert.equal(bench.idp.counters.tokenRequests, tokenRequests, 'the code is not sent anywhere');
  });

  test('refuses a response without iss from a provider that always sends it', async () => {
    const writes = bench.writes();
    const started = await app.start('mailbox');
    const url = await app.signIn(started.authorizeUrl, ALICE);
    url.searchParams.delete('iss');
    await assertRefused(await app.callback(url, started.cookie), 'issuer_mismatch', 400, writes);
  });

  test('refuses an id_token with a wrong nonce (a code obtained for another request)', async () => {
    const writes = bench.writes();
    const started = await app.start('mailbox');
    // The attacker's authorization: same PKCE challenge and state, another nonce.
    const injected = new URL(started.authorizeUrl);
    injected.searchParams.set('nonce', client.randomNonce());
    const page = await app.callback(await app.signIn(injected, ALICE), started.cookie);
    await assertRefused(page, 'id_token_invalid', 502, writes);
    assert.match(textOf(page.body), /nonce does not match/);
  });

  test('refuses an id_token issued for another audience', async () => {
    const writes = bench.writes();
    bench.rewriteTokenResponses(async (body) => ({
      ...body,
      id_token: await bench.idp.signJwt({ ...decodeJwt(String(body.id_token)), aud: 'another-app' }),
    }));
    try {
      const started = await app.start('mailbox');
      const page = await app.callback(await app.signIn(started.authorizeUrl, ALICE), started.cookie);
      await assertRefused(page, 'id_token_invalid', 502, writes);
      assert.match(textOf(page.body), /issued for another application/);
    } finally {
      bench.rewriteTokenResponses(undefined);
    }
  });

  test('refuses an id_token with a forged signature', async () => {
    const writes = bench.writes();
    const forger = await generateKeyPair('RS256');
    bench.rewriteTokenResponses(async (body) => {
      const original = String(body.id_token);
      const forged = await new SignJWT(decodeJwt(original))
        .setProtectedHeader(decodeProtectedHeader(original) as { alg: string })
        .sign(forger.privateKey);
      return { ...body, id_token: forged };
    });
    try {
      const started = await app.start('mailbox');
      const page = await app.callback(await app.signIn(started.authorizeUrl, ALICE), started.cookie);
      await assertRefused(page, 'id_token_invalid', 502, writes);
      assert.match(textOf(page.body), /signature is not valid/);
    } finally {
      bench.rewriteTokenResponses(undefined);
    }
  });

  test('refuses a code already redeemed', async () => {
    const writes = bench.writes();
    const started = await app.start('mailbox');
    const url = await app.signIn(started.authorizeUrl, ALICE);
    // Someone redeemed the code first (it needs the verifier, opened here with the browser's cookie).
    const row = await authRequestTable(bench.runtime).find(started.state);
    const config = await client.discovery(
      new URL(bench.idp.issuer),
      CLIENT_ID,
      undefined,
      client.ClientSecretPost(CLIENT_SECRET),
      {
        execute: [client.allowInsecureRequests],
      },
    );
    await client.authorizationCodeGrant(config, url, {
      pkceCodeVerifier: openVerifier(row!, started.browserSecret)!,
      expectedState: started.state,
      expectedNonce: row!.nonce,
    });
    const page = await app.callback(url, started.cookie);
    await assertRefused(page, 'token_exchange_failed', 502, writes);
    assert.match(textOf(page.body), /already used, has expired.*Start the authorization again/);
    assert.match(textOf(page.body), /Provider error invalid_grant/);
  });

  test('refuses a user other than the configured one, naming both, and revokes what it got', async () => {
    const writes = bench.writes();
    let issued: string | undefined;
    bench.rewriteTokenResponses((body) => {
      issued = String(body.access_token);
      return body;
    });
    try {
      const started = await app.start('mailbox');
      const page = await app.callback(await app.signIn(started.authorizeUrl, BOB), started.cookie);
      await assertRefused(page, 'wrong_user', 403, writes);
      assert.match(
        textOf(page.body),
        /You signed in as bob@contoso\.test, but account "mailbox" must be authorized by alice@contoso\.test/,
      );
      assert.ok(issued);
      assert.equal(await bench.idp.verifyAccessToken(issued), undefined, 'the grant was revoked');
    } finally {
      bench.rewriteTokenResponses(undefined);
    }
  });

  test('does not mark the account ready without a refresh token', async () => {
    const writes = bench.writes();
    const started = await app.start('no-offline');
    const page = await app.callback(await app.signIn(started.authorizeUrl, ALICE), started.cookie);
    await assertRefused(page, 'no_refresh_token', 502, writes);
    assert.equal((await bench.runtime.accountStatus.get('no-offline'))?.state ?? 'not_authorized', 'not_authorized');
  });

  test('explains a token endpoint that is down, and the admin can simply start again', async () => {
    const writes = bench.writes();
    for (const mode of ['down', 'reset'] as const) {
      bench.idp.setTokenEndpoint(mode);
      try {
        const started = await app.start('mailbox');
        const page = await app.callback(await app.signIn(started.authorizeUrl, ALICE), started.cookie);
        await assertRefused(page, 'token_exchange_failed', 502, writes);
        assert.match(textOf(page.body), /could not be reached or failed/);
        assert.match(textOf(page.body), /Nothing was stored\. Try again in a moment/);
      } finally {
        bench.idp.setTokenEndpoint('normal');
      }
    }
    const again = await app.start('mailbox');
    assert.equal((await app.callback(await app.signIn(again.authorizeUrl, ALICE), again.cookie)).status, 200);
  });

  test('refuses a wrong client secret with a page that says so', async () => {
    const writes = bench.writes();
    const started = await app.start('stale-secret');
    const page = await app.callback(await app.signIn(started.authorizeUrl, ALICE), started.cookie);
    await assertRefused(page, 'token_exchange_failed', 502, writes);
    const text = textOf(page.body);
    assert.match(text, /did not accept the client credentials: the client secret is wrong or expired/);
    assert.match(text, /client secret in Key Vault secret "stale-client-secret"/);
    assert.match(text, /Provider error invalid_client/);
  });
});

describe('app-only accounts', () => {
  test('obtain their token with the managed identity as client assertion, no secret anywhere', async () => {
    const account = bench.accounts.find((a) => a.id === 'app-only')!;
    const token = await fetchAppOnlyToken(bench.runtime, account);
    bench.secrets.add(token.accessToken);
    assert.deepEqual(bench.managedIdentityRequests.at(-1), {
      clientId: MANAGED_IDENTITY_CLIENT_ID,
      scopes: ['api://AzureADTokenExchange/.default'],
    });
    const claims = decodeJwt(token.accessToken);
    assert.equal(claims.aud, 'https://outlook.office365.com');
    assert.deepEqual(claims.roles, ['SMTP.SendAsApp']);
    assert.ok(Math.abs(token.expiresAt - (claims.exp as number) * 1000) < 5_000);
    assert.equal((await bench.idp.verifyAccessToken(token.accessToken))?.clientId, 'mi-app');
  });

  test('refuse an app-only token for Microsoft Graph, naming the audience', async () => {
    const account = bench.accounts.find((a) => a.id === 'app-only')!;
    const graph = await bench.idp.signJwt({ aud: 'https://graph.microsoft.com', roles: ['Mail.Send'] });
    assert.throws(() => checkAppOnlyToken(account, graph), /audience https:\/\/graph\.microsoft\.com.*Microsoft Graph token/);
    const noRole = await bench.idp.signJwt({ aud: 'https://outlook.office365.com', roles: [] });
    assert.throws(() => checkAppOnlyToken(account, noRole), /no SMTP\.SendAsApp role.*admin consent/);
  });
});

describe('secrets', () => {
  test('no token, code, verifier, cookie value or client secret appears in any log line or page of the suite', () => {
    assert.ok(bench.outputs.length > 20, 'the suite produced pages and logs to search');
    assert.ok(bench.secrets.size > 20, 'the suite recorded the secrets it used');
    const leaks: string[] = [];
    for (const secret of bench.secrets) {
      for (const part of searchableParts(secret)) {
        if (part.length < 8) continue;
        for (const output of bench.outputs)
          if (output.includes(part)) leaks.push(`${part.slice(0, 12)}… in ${output.slice(0, 120)}`);
      }
    }
    assert.deepEqual(leaks, []);
  });
});
