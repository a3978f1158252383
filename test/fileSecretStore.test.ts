import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FileSecretStore } from '../shared/storage/fileSecretStore';
import { SECRET_VALUE_MAX_BYTES } from '../shared/storage/secretStore';

let dir: string;
let counter = 0;
const newFile = () => join(dir, `case-${++counter}`, 'secrets.json');

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'file-secret-store-'));
});

after(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('FileSecretStore', () => {
  test('get on a missing file or a missing name returns undefined', async () => {
    const store = new FileSecretStore(newFile());
    assert.equal(await store.get('nothing-here'), undefined);
    await store.set('other', 'v');
    assert.equal(await store.get('nothing-here'), undefined);
  });

  test('set then get round-trips and the file is private', async () => {
    const file = newFile();
    const store = new FileSecretStore(file);
    await store.set('refresh-token', 'abc', { contentType: 'text/plain', tags: { account: 'contoso' } });
    await store.set('refresh-token', 'def');
    assert.equal(await store.get('refresh-token'), 'def');
    assert.equal(await new FileSecretStore(file).get('refresh-token'), 'def');
    assert.equal((await stat(file)).mode & 0o777, 0o600);

    const content = JSON.parse(await readFile(file, 'utf8'));
    assert.equal(content.secrets['refresh-token'].value, 'def');
    assert.deepEqual(Object.keys(content.secrets), ['refresh-token']);
  });

  test('names are case-insensitive, as in Key Vault', async () => {
    const file = newFile();
    const store = new FileSecretStore(file);
    await store.set('Client-Secret', 'one');
    await store.set('client-secret', 'two');
    assert.equal(await store.get('CLIENT-SECRET'), 'two');
    assert.deepEqual(Object.keys(JSON.parse(await readFile(file, 'utf8')).secrets), ['Client-Secret']);
  });

  test('concurrent sets are serialized: none is lost, the last one wins, no temporary file is left', async () => {
    const file = newFile();
    const store = new FileSecretStore(file);
    await Promise.all([
      ...Array.from({ length: 40 }, (_, i) => store.set(`secret-${i}`, `value-${i}`)),
      ...Array.from({ length: 10 }, (_, i) => store.set('shared', `shared-${i}`)),
    ]);
    for (let i = 0; i < 40; i++) assert.equal(await store.get(`secret-${i}`), `value-${i}`);
    assert.equal(await store.get('shared'), 'shared-9');
    assert.deepEqual(await readdir(join(file, '..')), ['secrets.json']);
  });

  test('a failed write does not block later writes', async () => {
    const store = new FileSecretStore(newFile());
    await assert.rejects(store.set('ok-name', 'x'.repeat(SECRET_VALUE_MAX_BYTES + 1)), /25600 bytes/);
    await store.set('ok-name', 'fine');
    assert.equal(await store.get('ok-name'), 'fine');
  });

  test('validates names and sizes like Key Vault', async () => {
    const file = newFile();
    const store = new FileSecretStore(file);
    await assert.rejects(store.get('bad_name'), /letters, digits and dashes/);
    await assert.rejects(store.set('a'.repeat(128), 'v'), /letters, digits and dashes/);
    await assert.rejects(store.set('big', 'é'.repeat(SECRET_VALUE_MAX_BYTES / 2 + 1)), /25602 bytes/);
    await assert.rejects(stat(file), { code: 'ENOENT' });
    await store.set('big', 'x'.repeat(SECRET_VALUE_MAX_BYTES));
  });

  test('reads hand-written files: plain string entries, disabled entries, other keys kept', async () => {
    const file = newFile();
    const store = new FileSecretStore(file);
    await store.set('seed', 'x'); // creates the directory
    await writeFile(
      file,
      JSON.stringify({
        $comment: 'local development secrets',
        secrets: { 'm365-client-secret': 'from-hand', 'old-token': { value: 'v', enabled: false } },
      }),
    );
    assert.equal(await store.get('m365-client-secret'), 'from-hand');
    assert.equal(await store.get('old-token'), undefined);
    assert.equal(await store.get('constructor'), undefined);

    await store.set('new-token', 'n');
    const content = JSON.parse(await readFile(file, 'utf8'));
    assert.equal(content.$comment, 'local development secrets');
    assert.equal(content.secrets['m365-client-secret'], 'from-hand');
    assert.equal(content.secrets['new-token'].value, 'n');
  });

  test('a corrupt file is reported without quoting its content', async () => {
    const file = newFile();
    const store = new FileSecretStore(file);
    await store.set('seed', 'x');
    await writeFile(file, '{"secrets": {"a": {"value": "leaked-secret-text" ');
    await assert.rejects(store.get('a'), (error: Error) => {
      assert.match(error.message, /is not valid JSON/);
      assert.ok(!error.message.includes('leaked-secret-text'));
      return true;
    });
    await writeFile(file, JSON.stringify({ secrets: { a: { value: 42 } } }));
    await assert.rejects(store.get('a'), /must look like/);
    await assert.rejects(store.set('b', 'v'), /must look like/);
  });
});
