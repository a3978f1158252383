/**
 * What a refresh costs Key Vault, per kind of refresh-token rotation, on real components: the local identity
 * provider rotating as Microsoft (reusable), Google (none) or a revoking provider does, the Key Vault double with
 * Microsoft's limits behind the real @azure/keyvault-secrets client, Azurite, and the app built as in Azure.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startAzurite, type Azurite } from '../local/peers/azurite';
import { parseAccounts } from '../shared/config/loadAccounts';
import { TABLES } from '../shared/names';
import { isThrottled } from '../shared/storage/secretStore';
import { mustWriteRefreshToken, REUSABLE_WRITE_INTERVAL_MS } from '../shared/tokens/refreshTokenWrites';
import { accountOffsetMs, planRefreshes, spreadWindowMs } from '../shared/tokens/refreshSpread';
import { refreshTokenSecretName } from '../shared/tokens/tokenStore';
import { startKeyVaultDouble, type KeyVaultDouble } from './support/keyVaultDouble';
import { recordingClock, startTokenRefreshWorld, type TokenRefreshWorld } from './support/tokenRefreshWorld';

const HOUR = 3_600_000;

let azurite: Azurite;
let vault: KeyVaultDouble;

before(async () => {
  [azurite, vault] = await Promise.all([startAzurite(), startKeyVaultDouble()]);
});
after(async () => {
  await vault?.stop();
  await azurite?.stop();
});

async function withWorld(
  options: Omit<Parameters<typeof startTokenRefreshWorld>[0], 'connectionString' | 'vault'>,
  body: (world: TokenRefreshWorld) => Promise<void>,
): Promise<void> {
  const world = await startTokenRefreshWorld({ connectionString: azurite.connectionString, vault, ...options });
  try {
    await body(world);
  } finally {
    await world.stop();
  }
}

const writesTo = (name: string) => vault.versions(name).length;
const outcomes = (results: { outcome: string }[]) => results.map((r) => r.outcome);

describe('Key Vault writes per refresh', () => {
  test('a revoking provider: the rotated refresh token is written at once, the access token never', async () => {
    await withWorld({ rotation: 'revoking', accounts: 2 }, async (world) => {
      const [first, second] = world.accountIds as [string, string];
      const before = vault.writes;
      const grants = world.refreshGrants();
      assert.deepEqual(outcomes(await world.run({ clock: recordingClock() })), ['refreshed', 'refreshed']);
      assert.equal(world.refreshGrants() - grants, 2);
      assert.equal(vault.writes - before, 2, 'one write per refresh');
      assert.equal(writesTo(refreshTokenSecretName(first)), 2, 'the seeded token and the rotated one');
      assert.equal(vault.secret(`${first}-access-token`), undefined);

      // The next run starts from the rotated token: had it not been kept, the provider would refuse it.
      const again = vault.writes;
      assert.deepEqual(outcomes(await world.run({ clock: recordingClock() })), ['refreshed', 'refreshed']);
      assert.equal(vault.writes - again, 2);
      assert.equal(writesTo(refreshTokenSecretName(second)), 3);
    });
  });

  test('a provider that does not rotate: no Key Vault write at all', async () => {
    await withWorld({ rotation: 'none', accounts: 2 }, async (world) => {
      const before = vault.writes;
      for (let run = 0; run < 3; run++) {
        assert.deepEqual(outcomes(await world.run({ clock: recordingClock() })), ['refreshed', 'refreshed']);
      }
      assert.equal(vault.writes - before, 0);
      for (const id of world.accountIds) assert.equal(writesTo(refreshTokenSecretName(id)), 1, id);
    });
  });

  test('a reusable provider: a simulated day of hourly refreshes writes once, at the end of the day', async () => {
    await withWorld({ rotation: 'reusable', accounts: 1 }, async (world) => {
      const [id] = world.accountIds as [string];
      const name = refreshTokenSecretName(id);
      const seeded = vault.secret(name)!.value;
      await world.run({ clock: recordingClock() });
      assert.equal(writesTo(name), 1, 'the first hour keeps the token written this very hour');
      const grants = world.refreshGrants();
      let writesInDay = 0;
      for (let hour = 1; hour <= 24; hour++) {
        vault.age(HOUR);
        const before = writesTo(name);
        assert.deepEqual(outcomes(await world.run({ clock: recordingClock() })), ['refreshed'], `hour ${hour}`);
        writesInDay += writesTo(name) - before;
        if (hour < 23) assert.equal(writesInDay, 0, `hour ${hour}: the day-old token is still the stored one`);
      }
      assert.equal(world.refreshGrants() - grants, 24, 'every hour refreshed at the provider');
      assert.equal(writesInDay, 1, 'one write in the day');
      assert.notEqual(vault.secret(name)!.value, seeded, 'and it is a newer token');
    });
  });

  test('a reusable provider writes at most 366 versions a year', () => {
    const start = Date.UTC(2028, 0, 1);
    let stored = { value: 'rt-0', writtenAt: new Date(start) };
    let writes = 0;
    for (let hour = 1; hour <= 366 * 24; hour++) {
      const now = start + hour * HOUR;
      if (mustWriteRefreshToken('reusable', `rt-${hour}`, stored, now)) {
        writes++;
        stored = { value: `rt-${hour}`, writtenAt: new Date(now) };
      }
    }
    assert.ok(writes <= 366, `${writes} writes`);
    assert.ok(writes >= 365, `${writes} writes: still saved daily`);
    assert.equal(REUSABLE_WRITE_INTERVAL_MS, 24 * HOUR);
  });

  test('nothing unchanged is written, and a first or unknown-age token is', () => {
    const stored = { value: 'same', writtenAt: new Date() };
    for (const rotation of ['none', 'reusable', 'revoking'] as const) {
      assert.equal(mustWriteRefreshToken(rotation, 'same', stored, Date.now()), false, rotation);
      assert.equal(mustWriteRefreshToken(rotation, undefined, stored, Date.now()), false, rotation);
      assert.equal(mustWriteRefreshToken(rotation, 'new', undefined, Date.now()), true, rotation);
      assert.equal(mustWriteRefreshToken(rotation, 'new', { value: 'old' }, Date.now()), true, rotation);
    }
    assert.equal(mustWriteRefreshToken('revoking', 'new', stored, Date.now()), true);
    assert.equal(mustWriteRefreshToken('none', 'new', stored, Date.now()), true, 'a changed token is kept anyway');
    assert.equal(mustWriteRefreshToken('reusable', 'new', stored, Date.now()), false);
  });
});

describe('access tokens outside Key Vault', () => {
  test('another instance reads the token from the table, sealed, with one Key Vault read for the key', async () => {
    await withWorld({ rotation: 'revoking', accounts: 1, accessTokenTtlSeconds: 3600 }, async (world) => {
      const [id] = world.accountIds as [string];
      await world.run({ clock: recordingClock() });
      const record = await world.app.tokenStore.readAccessToken(id);
      assert.ok(record && (await world.idp.verifyAccessToken(record.accessToken)));

      const row = await world.app.storage
        .table(TABLES.leases)
        .getEntity<Record<string, unknown>>(`refresh-${id}`, 'access-token');
      assert.ok(!JSON.stringify(row).includes(record.accessToken), 'the row holds no readable token');

      const cold = world.newInstance();
      const reads = vault.reads;
      const grants = world.refreshGrants();
      const [account] = cold.accounts;
      assert.equal((await cold.tokens.get(account!)).accessToken, record.accessToken);
      assert.equal(vault.reads - reads, 1, 'the sealing key, once per process');
      assert.equal(world.refreshGrants(), grants, 'no refresh at the provider');
    });
  });

  test('a row copied to another account, or altered, reads as absent and is refreshed', async () => {
    await withWorld({ rotation: 'revoking', accounts: 2, accessTokenTtlSeconds: 3600 }, async (world) => {
      const [first, second] = world.accountIds as [string, string];
      await world.run({ clock: recordingClock() });
      const table = world.app.storage.table(TABLES.leases);
      const row = await table.getEntity<{ keyId: string; sealed: string }>(`refresh-${first}`, 'access-token');
      await table.upsertEntity(
        { partitionKey: `refresh-${second}`, rowKey: 'access-token', keyId: row.keyId, sealed: row.sealed },
        'Replace',
      );
      assert.equal(await world.app.tokenStore.readAccessToken(second), undefined, 'sealed for the first account only');
      const flipped = Buffer.from(row.sealed, 'base64');
      flipped[20] = flipped[20]! ^ 1;
      await table.upsertEntity(
        { partitionKey: `refresh-${first}`, rowKey: 'access-token', keyId: row.keyId, sealed: flipped.toString('base64') },
        'Replace',
      );
      assert.equal(await world.app.tokenStore.readAccessToken(first), undefined, 'tampering is detected');
      const cold = world.newInstance();
      const token = await cold.tokens.get(cold.accounts[0]!);
      assert.ok(await world.idp.verifyAccessToken(token.accessToken), 'a fresh token from the provider');
    });
  });
});

describe('the hourly run and Key Vault throttling', () => {
  test('a 429 is waited out (Retry-After) and the run goes on with the next account', async () => {
    await withWorld({ rotation: 'revoking', accounts: 3 }, async (world) => {
      await world.run({ clock: recordingClock() });
      const throttled = vault.throttled;
      vault.limits = { creates: 300, others: 0, windowMs: 2000 };
      let results;
      const clock = recordingClock();
      try {
        // One at a time, so that each 429 is seen before the next account starts.
        results = await world.run({ clock, maxInFlight: 1 });
      } finally {
        vault.limits = { creates: 300, others: 4000, windowMs: 10_000 };
      }
      assert.deepEqual(outcomes(results), ['throttled', 'throttled', 'throttled'], 'every account was tried');
      assert.equal(vault.throttled - throttled, 3);
      // Retry-After is whole seconds until the oldest counted request leaves the 2-second window: 1 or 2.
      const waits = clock.sleeps.filter((ms) => ms >= 1000);
      assert.equal(waits.length, 2, `Retry-After waited before each next account: ${clock.sleeps.join(', ')}`);
      for (const ms of waits) assert.ok(ms === 1000 || ms === 2000, `${ms} ms`);
      assert.deepEqual(outcomes(await world.run({ clock: recordingClock() })), ['refreshed', 'refreshed', 'refreshed']);
    });
  });

  test('a throttled write of a rotated refresh token is waited out under the lease, not lost', async () => {
    await withWorld({ rotation: 'revoking', accounts: 1 }, async (world) => {
      const [id] = world.accountIds as [string];
      await world.run({ clock: recordingClock() });
      const throttled = vault.throttled;
      vault.limits = { creates: 1, others: 4000, windowMs: 1000 };
      try {
        // The run before may have filled the one-create window already; if not, this does.
        await world.app.secrets.set('fills-the-create-window', 'x').catch((error: unknown) => {
          if (!isThrottled(error)) throw error;
        });
        assert.deepEqual(outcomes(await world.run({ clock: recordingClock() })), ['refreshed']);
      } finally {
        vault.limits = { creates: 300, others: 4000, windowMs: 10_000 };
      }
      assert.ok(vault.throttled - throttled >= 1, 'the write met a 429');
      assert.equal(writesTo(refreshTokenSecretName(id)), 3, 'and was written after Retry-After');
      // The provider consumed the previous token: only the kept one refreshes now.
      assert.deepEqual(outcomes(await world.run({ clock: recordingClock() })), ['refreshed']);
    });
  });

  test('accounts are spread over the window, each at a stable offset, in order', async () => {
    await withWorld({ rotation: 'none', accounts: 5, env: { REFRESH_SPREAD_MINUTES: '8' } }, async (world) => {
      const clock = recordingClock();
      assert.equal((await world.run({ clock })).length, 5);
      const window = spreadWindowMs(5, 8 * 60_000, 30 * 60_000);
      assert.equal(window, 500);
      const offsets = world.accountIds.map((id) => accountOffsetMs(id, window)).sort((a, b) => a - b);
      // Each start waits for its place, and never comes within 50 ms (20 a second) of the one before.
      let expected = -Infinity;
      for (const offset of offsets) expected = Math.max(offset, expected + 50);
      assert.equal(clock.elapsed(), expected, "the run waited until the last account's place, and no longer");
      assert.ok(clock.sleeps.length >= 4, `spread, not one burst: ${clock.sleeps.join(', ')}`);
    });
  });

  test('spreading: the window grows with the accounts up to the setting; offsets stay put', () => {
    assert.equal(spreadWindowMs(10, 8 * 60_000, HOUR), 1000);
    assert.equal(spreadWindowMs(10_000, 8 * 60_000, HOUR), 8 * 60_000);
    assert.equal(spreadWindowMs(10_000, 0, HOUR), 0, 'REFRESH_SPREAD_MINUTES=0: back to back');
    assert.equal(spreadWindowMs(10_000, 8 * 60_000, 60_000), 30_000, 'never more than half the time to the next run');
    const ids = Array.from({ length: 1000 }, (_, i) => `acct-${i}`);
    const plan = planRefreshes(ids, (id) => id, 8 * 60_000);
    assert.deepEqual(
      plan.map((p) => p.item),
      planRefreshes([...ids].reverse(), (id) => id, 8 * 60_000).map((p) => p.item),
      'the same order whatever the order of the configuration',
    );
    for (const { item, offsetMs } of plan) assert.equal(offsetMs, accountOffsetMs(item, 8 * 60_000));
    // Evenly over the window: no tenth of it holds more than twice its share.
    const buckets = new Array(10).fill(0);
    for (const { offsetMs } of plan) buckets[Math.floor(offsetMs / 48_000)]++;
    assert.ok(Math.max(...buckets) < 200, `buckets ${buckets.join(',')}`);
  });
});

describe('provider presets', () => {
  test('Microsoft rotates reusably, Google not at all, custom providers are assumed to revoke', () => {
    const [microsoft, google, custom, customReusable] = parseAccounts([
      {
        id: 'm',
        provider: 'microsoft',
        tenantId: '00000000-0000-4000-8000-000000000001',
        clientId: 'c',
        user: 'm@contoso.test',
      },
      { id: 'g', provider: 'google', clientId: 'c', user: 'g@example.com' },
      {
        id: 'c',
        provider: 'custom',
        clientId: 'c',
        user: 'c@example.com',
        oauth: { issuer: 'https://id.example', scopes: ['s'] },
        smtp: { host: 'smtp.example' },
      },
      {
        id: 'r',
        provider: 'custom',
        clientId: 'c',
        user: 'r@example.com',
        oauth: { issuer: 'https://id.example', scopes: ['s'], refreshTokenRotation: 'reusable' },
        smtp: { host: 'smtp.example' },
      },
    ]);
    assert.equal(microsoft?.oauth.refreshTokenRotation, 'reusable');
    assert.equal(google?.oauth.refreshTokenRotation, 'none');
    assert.equal(custom?.oauth.refreshTokenRotation, 'revoking');
    assert.equal(customReusable?.oauth.refreshTokenRotation, 'reusable');
  });

  test('a preset provider refuses oauth.refreshTokenRotation, naming the field', () => {
    assert.throws(
      () =>
        parseAccounts([
          { id: 'g', provider: 'google', clientId: 'c', user: 'g@example.com', oauth: { refreshTokenRotation: 'none' } },
        ]),
      /MAIL_ACCOUNTS\[0\]\.oauth\.refreshTokenRotation: how provider "google" rotates refresh tokens comes from the preset/,
    );
    assert.throws(
      () =>
        parseAccounts([
          {
            id: 'c',
            provider: 'custom',
            clientId: 'c',
            user: 'c@example.com',
            oauth: { issuer: 'https://id.example', scopes: ['s'], refreshTokenRotation: 'sometimes' },
            smtp: { host: 'smtp.example' },
          },
        ]),
      /MAIL_ACCOUNTS\[0\]\.oauth\.refreshTokenRotation/,
    );
  });
});
