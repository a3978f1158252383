import assert from 'node:assert/strict';
import { createHash, generateKeyPairSync, X509Certificate } from 'node:crypto';
import { describe, test } from 'node:test';
import { decodeJwt, decodeProtectedHeader } from 'jose';
import type { ClientAuth, ServerMetadata } from 'openid-client';
import { parseAccounts, type Account } from '../shared/config';
import {
  certificateAssertion,
  clientSecret,
  JWT_BEARER_ASSERTION,
  managedIdentityAssertion,
  resolveClientAuth,
} from '../shared/oauth/clientAuth';
import type { ClientAuthDeps, ManagedIdentityCredentialFactory } from '../shared/oauth/clientAuth';
import type { SecretStore } from '../shared/storage/secretStore';
import { createTestCa, issueServerCert } from './support/certs';

const TENANT = '0f6b7f0c-0000-4000-8000-00000000a11c';
const MICROSOFT: ServerMetadata = {
  issuer: `https://login.microsoftonline.com/${TENANT}/v2.0`,
  token_endpoint: `https://login.microsoftonline.com/${TENANT}/oauth2/v2.0/token`,
  token_endpoint_auth_methods_supported: ['client_secret_post', 'private_key_jwt', 'client_secret_basic'],
};

function microsoftAccount(clientAuth: object): Account {
  return parseAccounts([
    {
      id: 'm365',
      provider: 'microsoft',
      tenantId: TENANT,
      clientId: 'c1d0c1d0-0000-4000-8000-000000000001',
      user: 'sender@contoso.com',
      clientAuth,
    },
  ])[0]!;
}

async function send(auth: ClientAuth, as: ServerMetadata = MICROSOFT) {
  const body = new URLSearchParams();
  const headers = new Headers();
  await auth(as, { client_id: 'c1d0c1d0-0000-4000-8000-000000000001' }, body, headers);
  return { body, headers };
}

function fakeRuntime(
  secrets: Record<string, string>,
  managedIdentityCredential?: ManagedIdentityCredentialFactory,
): ClientAuthDeps {
  const store: SecretStore = {
    get: async (name) => secrets[name],
    read: async (name) => (secrets[name] === undefined ? undefined : { value: secrets[name] }),
    set: async () => {},
  };
  return { env: {}, secrets: store, ...(managedIdentityCredential ? { managedIdentityCredential } : {}) };
}

describe('client secret', () => {
  test('is sent in the body where the provider supports client_secret_post', async () => {
    const { body, headers } = await send(clientSecret('s3cret'));
    assert.equal(body.get('client_secret'), 's3cret');
    assert.equal(headers.get('authorization'), null);
  });

  test('falls back on HTTP Basic where the provider supports only that', async () => {
    const { body, headers } = await send(clientSecret('s3cret'), {
      ...MICROSOFT,
      token_endpoint_auth_methods_supported: ['client_secret_basic'],
    });
    assert.equal(body.get('client_secret'), null);
    assert.match(headers.get('authorization') ?? '', /^Basic /);
  });

  test('a missing Key Vault secret is a configuration error naming the secret', async () => {
    const account = microsoftAccount({ type: 'secret', secretName: 'm365-client-secret' });
    await assert.rejects(resolveClientAuth(fakeRuntime({}), account), (error: Error & { code?: string }) => {
      assert.equal(error.code, 'config_error');
      assert.match(error.message, /Store it in Key Vault as secret "m365-client-secret"/);
      return true;
    });
  });
});

describe('certificate (private_key_jwt)', () => {
  test('signs an assertion with x5t = base64url(SHA-1 thumbprint) and, for Microsoft, the token endpoint as audience', async () => {
    const ca = await createTestCa();
    const { key, cert } = await issueServerCert(ca, ['client.test']);
    const thumbprint = createHash('sha1').update(new X509Certificate(cert).raw).digest('hex').toUpperCase();
    const account = microsoftAccount({ type: 'certificate', keySecretName: 'm365-cert', thumbprint });
    const auth = await resolveClientAuth(fakeRuntime({ 'm365-cert': `${key}\n${cert}` }), account);
    const { body } = await send(auth);
    assert.equal(body.get('client_assertion_type'), JWT_BEARER_ASSERTION);
    const assertion = body.get('client_assertion')!;
    const header = decodeProtectedHeader(assertion);
    assert.equal(header.x5t, Buffer.from(thumbprint, 'hex').toString('base64url'));
    const claims = decodeJwt(assertion);
    assert.equal(claims.aud, MICROSOFT.token_endpoint);
    assert.equal(claims.iss, 'c1d0c1d0-0000-4000-8000-000000000001');
    assert.equal(claims.sub, claims.iss);
    assert.ok(claims.jti && claims.exp);
  });

  test('accepts a PKCS#1 RSA key without a certificate and signs RS256', async () => {
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const pem = privateKey.export({ type: 'pkcs1', format: 'pem' }).toString();
    const account = microsoftAccount({ type: 'certificate', keySecretName: 'k', thumbprint: 'a'.repeat(40) });
    const auth = await certificateAssertion(account, account.clientAuth as never, pem);
    assert.equal(decodeProtectedHeader((await send(auth)).body.get('client_assertion')!).alg, 'RS256');
  });

  test('refuses a certificate whose thumbprint is not the configured one', async () => {
    const ca = await createTestCa();
    const { key, cert } = await issueServerCert(ca, ['client.test']);
    const account = microsoftAccount({ type: 'certificate', keySecretName: 'k', thumbprint: 'b'.repeat(40) });
    await assert.rejects(
      certificateAssertion(account, account.clientAuth as never, `${key}${cert}`),
      /has thumbprint [0-9A-F]{40}, but the configuration says B{40}/,
    );
  });

  test('refuses a secret that holds no private key', async () => {
    const account = microsoftAccount({ type: 'certificate', keySecretName: 'k', thumbprint: 'a'.repeat(40) });
    await assert.rejects(
      certificateAssertion(account, account.clientAuth as never, 'not a key'),
      /does not hold a PEM private key/,
    );
  });
});

describe('managed identity as federated credential', () => {
  test('sends the identity token for api://AzureADTokenExchange as client_assertion, and no secret', async () => {
    const asked: Array<{ clientId: string | undefined; scopes: string | string[] }> = [];
    const factory = (clientId: string | undefined) => ({
      async getToken(scopes: string | string[]) {
        asked.push({ clientId, scopes });
        return { token: 'eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJtaSJ9.c2ln', expiresOnTimestamp: Date.now() + 3600_000 };
      },
    });
    const account = microsoftAccount({ type: 'managed_identity' });
    const runtime = fakeRuntime({}, factory);
    (runtime as { env: Record<string, string> }).env = { AZURE_CLIENT_ID: 'mi-client-id' };
    const { body, headers } = await send(await resolveClientAuth(runtime, account));
    assert.deepEqual(asked, [{ clientId: 'mi-client-id', scopes: 'api://AzureADTokenExchange/.default' }]);
    assert.deepEqual(Object.fromEntries(body), {
      client_id: 'c1d0c1d0-0000-4000-8000-000000000001',
      client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
      client_assertion: 'eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJtaSJ9.c2ln',
    });
    assert.equal(headers.get('authorization'), null);
  });

  test('the assertion helper sets exactly the three fields', async () => {
    const { body } = await send(managedIdentityAssertion('a.b.c'));
    assert.deepEqual([...body.keys()].sort(), ['client_assertion', 'client_assertion_type', 'client_id']);
  });
});
