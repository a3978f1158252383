import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { DefaultAzureCredential, ManagedIdentityCredential } from '@azure/identity';
import { SecretClient } from '@azure/keyvault-secrets';
import { createSecretStore } from '../shared/storage/createSecretStore';
import { FileSecretStore } from '../shared/storage/fileSecretStore';
import { createKeyVaultSecretStore, KeyVaultSecretStore } from '../shared/storage/keyVaultSecretStore';
import { isThrottled, SECRET_VALUE_MAX_BYTES, SecretStoreError } from '../shared/storage/secretStore';
import { createTestCa, issueServerCert } from './support/certs';
import {
  FAKE_TENANT_ID,
  FakeTokenCredential,
  KEY_VAULT_SCOPE,
  startKeyVaultDouble,
  type KeyVaultDouble,
} from './support/keyVaultDouble';

let vault: KeyVaultDouble;
let counter = 0;
const uniqueName = (prefix: string) => `${prefix}-${++counter}`;

// The CA is passed explicitly so that this file also passes when run without the launcher's NODE_EXTRA_CA_CERTS.
function clientOptions() {
  return { tlsOptions: { ca: vault.caPem }, retryOptions: { maxRetries: 0 } };
}

function newStore(credential = new FakeTokenCredential()) {
  return new KeyVaultSecretStore(vault.url, credential, {
    disableChallengeResourceVerification: true,
    clientOptions: clientOptions(),
  });
}

function assertNoLeak(error: unknown, secretValue: string) {
  for (const text of [String(error), inspect(error, { depth: 10 }), JSON.stringify(error)]) {
    assert.ok(!text.includes(secretValue), `error exposes the secret value: ${text}`);
  }
}

before(async () => {
  vault = await startKeyVaultDouble();
});

after(async () => {
  await vault.stop();
});

describe('KeyVaultSecretStore against the Key Vault double', () => {
  test('set then get round-trips, after the bearer challenge', async () => {
    const credential = new FakeTokenCredential();
    const store = newStore(credential);
    const name = uniqueName('refresh-token');
    const before = vault.requests.length;

    await store.set(name, 'token-value-1');
    assert.equal(await store.get(name), 'token-value-1');

    const mine = vault.requests.slice(before);
    assert.deepEqual(
      mine.map((r) => [r.method, r.operation, r.status, r.authenticated]),
      [
        ['PUT', 'challenge', 401, false],
        ['PUT', 'setSecret', 200, true],
        ['GET', 'getSecret', 200, true],
      ],
    );
    assert.deepEqual(credential.calls[0], { scopes: [KEY_VAULT_SCOPE], tenantId: FAKE_TENANT_ID });
  });

  test('each set writes a new version with its content type and tags; get returns the latest', async () => {
    const store = newStore();
    const name = uniqueName('client-secret');
    const writes = vault.writes;

    await store.set(name, 'first');
    await store.set(name, 'second', { contentType: 'text/plain', tags: { account: 'contoso' } });

    assert.equal(vault.writes - writes, 2);
    const versions = vault.versions(name);
    assert.equal(versions.length, 2);
    for (const version of versions) assert.match(version, /^[0-9a-f]{32}$/);
    assert.notEqual(versions[0], versions[1]);
    assert.deepEqual(vault.secret(name), {
      value: 'second',
      version: versions[1],
      enabled: true,
      contentType: 'text/plain',
      tags: { account: 'contoso' },
    });
    assert.equal(await store.get(name), 'second');
  });

  test('get returns undefined for a missing or a disabled secret', async () => {
    const store = newStore();
    assert.equal(await store.get(uniqueName('missing')), undefined);

    const name = uniqueName('disabled');
    vault.seed(name, 'hidden');
    vault.setEnabled(name, false);
    assert.equal(await store.get(name), undefined);
  });

  test('delete removes a secret through the service (an account deleted on the page), and a missing one is fine', async () => {
    const store = newStore();
    const name = uniqueName('deleted');
    await store.set(name, 'client-secret-of-a-deleted-account');
    await store.delete(name);
    assert.equal(await store.get(name), undefined);
    await store.delete(uniqueName('never-there'));
  });

  test('names are case-insensitive, as in Key Vault', async () => {
    const store = newStore();
    const name = uniqueName('Mixed-Case');
    await store.set(name, 'v');
    assert.equal(await store.get(name.toLowerCase()), 'v');
  });

  test('invalid names and oversized values are refused before any request', async () => {
    const store = newStore();
    const requests = vault.requests.length;

    for (const bad of ['', 'has_underscore', 'has.dot', 'a'.repeat(128), 'ünïcode']) {
      await assert.rejects(store.get(bad), /letters, digits and dashes/);
      await assert.rejects(store.set(bad, 'v'), /letters, digits and dashes/);
    }
    const name = uniqueName('big');
    await assert.rejects(store.set(name, 'x'.repeat(SECRET_VALUE_MAX_BYTES + 1)), /25600 bytes/);
    // The limit is in UTF-8 bytes, not characters.
    await assert.rejects(store.set(name, 'é'.repeat(SECRET_VALUE_MAX_BYTES / 2 + 1)), /25602 bytes; the limit is 25600/);
    await assert.rejects(store.set(name, 'v', { contentType: 'c'.repeat(256) }), /contentType/);
    await assert.rejects(
      store.set(name, 'v', { tags: Object.fromEntries(Array.from({ length: 16 }, (_, i) => [`t${i}`, 'x'])) }),
      /15 tags/,
    );
    assert.equal(vault.requests.length, requests);

    await store.set(name, 'x'.repeat(SECRET_VALUE_MAX_BYTES));
    assert.equal((await store.get(name))?.length, SECRET_VALUE_MAX_BYTES);
  });

  test('an outage surfaces as a SecretStoreError that does not contain the value', async () => {
    const store = newStore();
    const name = uniqueName('outage');
    const secretValue = 'do-not-print-this-refresh-token';
    await store.get(name); // completes the challenge first, so the requests below carry the body

    try {
      vault.setDown(true);
      const unavailable = await store.set(name, secretValue).then(
        () => assert.fail('set succeeded during the outage'),
        (error: unknown) => error,
      );
      assert.ok(unavailable instanceof SecretStoreError);
      assert.equal(unavailable.statusCode, 503);
      assert.equal(unavailable.operation, 'set');
      assert.match(unavailable.message, /Key Vault set of secret "outage-\d+" failed \(503 ServiceUnavailable\)/);
      assertNoLeak(unavailable, secretValue);
      await assert.rejects(store.get(name), (error: unknown) => error instanceof SecretStoreError && error.statusCode === 503);

      vault.setDown('drop');
      const dropped = await store.set(name, secretValue).then(
        () => assert.fail('set succeeded with dropped connections'),
        (error: unknown) => error,
      );
      assert.ok(dropped instanceof SecretStoreError);
      assert.equal(dropped.statusCode, undefined);
      assertNoLeak(dropped, secretValue);
    } finally {
      vault.setDown(false);
    }

    await store.set(name, secretValue);
    assert.equal(await store.get(name), secretValue);
  });

  test('a wrong token is refused', async () => {
    const store = newStore(new FakeTokenCredential('not-the-right-token'));
    await assert.rejects(store.get(uniqueName('any')), (error: unknown) => {
      assert.ok(error instanceof SecretStoreError);
      assert.equal(error.statusCode, 401);
      assert.ok(!error.message.includes('not-the-right-token'));
      return true;
    });
  });

  test('a server certificate from an untrusted CA is refused', async () => {
    const otherCa = await createTestCa({ commonName: 'untrusted test CA' });
    const server = await issueServerCert(otherCa);
    const rogue = await startKeyVaultDouble({ tls: { ...server, caPem: otherCa.caPem } });
    try {
      const store = new KeyVaultSecretStore(rogue.url, new FakeTokenCredential(), {
        disableChallengeResourceVerification: true,
        clientOptions: { tlsOptions: { ca: vault.caPem }, retryOptions: { maxRetries: 0 } },
      });
      await assert.rejects(store.get('anything'), /certificate/i);
      assert.equal(rogue.requests.length, 0);
    } finally {
      await rogue.stop();
    }
  });
});

describe('createKeyVaultSecretStore', () => {
  test('reads KEY_VAULT_URL and KEY_VAULT_DISABLE_CHALLENGE_VERIFICATION', async () => {
    const store = createKeyVaultSecretStore(
      { KEY_VAULT_URL: vault.url, KEY_VAULT_DISABLE_CHALLENGE_VERIFICATION: 'true' },
      { credential: new FakeTokenCredential(), clientOptions: clientOptions() },
    );
    const name = uniqueName('from-env');
    await store.set(name, 'v');
    assert.equal(await store.get(name), 'v');
  });

  test('without the verification switch the SDK refuses a challenge from a host outside vault.azure.net', async () => {
    const store = createKeyVaultSecretStore(
      { KEY_VAULT_URL: vault.url },
      { credential: new FakeTokenCredential(), clientOptions: clientOptions() },
    );
    await assert.rejects(store.get(uniqueName('any')), /challenge resource 'vault\.azure\.net' does not match/);
  });

  test('rejects a missing or non-https KEY_VAULT_URL', () => {
    assert.throws(() => createKeyVaultSecretStore({}), /KEY_VAULT_URL is not set/);
    assert.throws(() => createKeyVaultSecretStore({ KEY_VAULT_URL: 'http://vault.example' }), /https/);
    assert.throws(() => createKeyVaultSecretStore({ KEY_VAULT_URL: 'not a url' }), /not a valid URL/);
  });

  test('builds a managed identity credential when AZURE_CLIENT_ID is set, without contacting anything', () => {
    const clientId = '00000000-0000-0000-0000-000000000001';
    const store = createKeyVaultSecretStore({ KEY_VAULT_URL: 'https://example.vault.azure.net', AZURE_CLIENT_ID: clientId });
    assert.ok(store.credential instanceof ManagedIdentityCredential, `built ${store.credential.constructor.name}`);
    // The user-assigned identity's client id (a field the SDK keeps on the credential, not part of its typed API).
    assert.equal((store.credential as unknown as { clientId?: string }).clientId, clientId);

    const withoutId = createKeyVaultSecretStore({ KEY_VAULT_URL: 'https://example.vault.azure.net' });
    assert.ok(withoutId.credential instanceof DefaultAzureCredential, `built ${withoutId.credential.constructor.name}`);
  });
});

describe('createSecretStore', () => {
  test('prefers Key Vault, falls back to the local file, and names both settings otherwise', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'secret-store-'));
    try {
      const file = join(dir, 'secrets.json');
      const credential = new FakeTokenCredential();
      assert.ok(
        createSecretStore({ KEY_VAULT_URL: vault.url, LOCAL_SECRETS_FILE: file }, { credential }) instanceof KeyVaultSecretStore,
      );
      const local = createSecretStore({ LOCAL_SECRETS_FILE: file, KEY_VAULT_URL: '  ' });
      assert.ok(local instanceof FileSecretStore);
      assert.equal(local.path, file);
      assert.throws(() => createSecretStore({}), /KEY_VAULT_URL.*LOCAL_SECRETS_FILE/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('Key Vault double', () => {
  test('answers the SDK like the service: validation errors, list, versions, delete and purge', async () => {
    const client = new SecretClient(vault.url, new FakeTokenCredential(), {
      disableChallengeResourceVerification: true,
      ...clientOptions(),
    });
    await assert.rejects(client.setSecret('bad_name', 'v'), { statusCode: 400, code: 'BadParameter' });
    await assert.rejects(client.setSecret('too-big', 'x'.repeat(SECRET_VALUE_MAX_BYTES + 1)), {
      statusCode: 400,
      code: 'BadParameter',
    });
    await assert.rejects(client.getSecret(uniqueName('absent')), { statusCode: 404, code: 'SecretNotFound' });

    const name = uniqueName('lifecycle');
    const first = await client.setSecret(name, 'one', { contentType: 'text/plain' });
    assert.equal(first.properties.vaultUrl, vault.url);
    assert.equal(first.properties.recoveryLevel, 'Recoverable+Purgeable');
    assert.ok(first.properties.createdOn instanceof Date);
    await client.setSecret(name, 'two');
    assert.equal((await client.getSecret(name, { version: first.properties.version })).value, 'one');

    const listed: string[] = [];
    for await (const properties of client.listPropertiesOfSecrets()) listed.push(properties.name);
    assert.ok(listed.includes(name));
    const versions: string[] = [];
    for await (const properties of client.listPropertiesOfSecretVersions(name)) versions.push(properties.version!);
    assert.deepEqual(versions, vault.versions(name));

    const poller = await client.beginDeleteSecret(name, { intervalInMs: 10 });
    const deleted = await poller.pollUntilDone();
    assert.equal(deleted.properties.recoveryId, `${vault.url}/deletedsecrets/${name}`);
    await assert.rejects(client.getSecret(name), { statusCode: 404 });
    await assert.rejects(client.setSecret(name, 'three'), { statusCode: 409 });
    await client.purgeDeletedSecret(name);
    await client.setSecret(name, 'three');
    assert.equal(vault.versions(name).length, 1);
  });
});

describe('Key Vault double throttling', () => {
  let limited: KeyVaultDouble;
  before(async () => {
    limited = await startKeyVaultDouble({ limits: { creates: 3, others: 5, windowMs: 1000 } });
  });
  after(async () => {
    await limited?.stop();
  });
  const storeOf = (maxRetries: number) =>
    new KeyVaultSecretStore(limited.url, new FakeTokenCredential(), {
      disableChallengeResourceVerification: true,
      clientOptions: { tlsOptions: { ca: limited.caPem }, retryOptions: { maxRetries } },
    });
  const waitForWindow = () => new Promise((resolve) => setTimeout(resolve, 1100));

  test('over the create limit a set gets 429 Throttled with Retry-After, as the service answers', async () => {
    await waitForWindow();
    const store = storeOf(0);
    const name = uniqueName('throttled');
    for (let i = 0; i < 3; i++) await store.set(name, `v${i}`);
    const throttledBefore = limited.throttled;
    const refused = await store.set(name, 'do-not-print-this-value').then(
      () => assert.fail('the fourth create in the window was accepted'),
      (error: unknown) => error,
    );
    assert.ok(refused instanceof SecretStoreError);
    assert.equal(refused.statusCode, 429);
    assert.equal(refused.code, 'Throttled');
    assert.equal(refused.retryAfterMs, 1000);
    assert.ok(isThrottled(refused));
    assertNoLeak(refused, 'do-not-print-this-value');
    assert.equal(limited.throttled - throttledBefore, 1);
    assert.equal(limited.versions(name).length, 3, 'a refused set stores nothing');
    // Reads are another class: the create limit does not hold them up.
    assert.equal(await store.get(name), 'v2');
  });

  test('over the other limit a get gets 429; refused requests do not count against the window', async () => {
    await waitForWindow();
    const store = storeOf(0);
    const name = uniqueName('reads');
    limited.seed(name, 'value');
    for (let i = 0; i < 5; i++) assert.equal(await store.get(name), 'value');
    for (let i = 0; i < 3; i++) {
      await assert.rejects(store.get(name), (error: unknown) => isThrottled(error) && error.statusCode === 429);
    }
    await waitForWindow();
    // Had the three refusals counted, the window would still be full.
    assert.equal(await store.get(name), 'value');
  });

  test('the SDK with its default retries waits Retry-After out and succeeds', async () => {
    await waitForWindow();
    const store = storeOf(3);
    const name = uniqueName('waited');
    const throttledBefore = limited.throttled;
    for (let i = 0; i < 4; i++) await store.set(name, `v${i}`);
    assert.equal(limited.throttled - throttledBefore, 1, 'the fourth was refused once, then retried');
    assert.equal(limited.versions(name).length, 4);
  });

  test('the limits are Microsoft’s by default and can be switched off', async () => {
    assert.deepEqual(vault.limits, { creates: 300, others: 4000, windowMs: 10_000 });
    const free = await startKeyVaultDouble({ limits: false });
    try {
      assert.equal(free.limits, false);
    } finally {
      await free.stop();
    }
  });
});
