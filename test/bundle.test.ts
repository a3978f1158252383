import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';

// The Functions host hands the worker `@azure/functions-core`; this stand-in records what the bundle registers.
const CORE_STUB = `
const registered = [];
globalThis.__registered = registered;
module.exports = {
  version: 'test',
  setProgrammingModel() {},
  registerHook() { return { dispose() {} }; },
  log() {},
  registerFunction(metadata) { registered.push(metadata); return { dispose() {} }; },
};
`;

const repo = path.resolve(import.meta.dirname, '..');
const dir = mkdtempSync(path.join(tmpdir(), 'outbox-bundle-'));
after(() => rmSync(dir, { recursive: true, force: true }));

test('the esbuild bundle loads on its own and registers every function in functions/', () => {
  execFileSync(process.execPath, ['esbuild.config.mjs'], { cwd: repo, stdio: 'pipe' });
  const bundle = path.join(repo, 'dist', 'index.mjs');
  assert.ok(statSync(bundle).size < 2.5 * 1024 * 1024, 'bundle under 2.5 MB');

  copyFileSync(bundle, path.join(dir, 'index.mjs'));
  const core = path.join(dir, 'node_modules', '@azure', 'functions-core');
  mkdirSync(core, { recursive: true });
  writeFileSync(path.join(core, 'package.json'), JSON.stringify({ name: '@azure/functions-core', main: 'index.js' }));
  writeFileSync(path.join(core, 'index.js'), CORE_STUB);

  // A fresh process with no node_modules of the repo in reach: everything must be inside the bundle.
  const output = execFileSync(
    process.execPath,
    [
      '--input-type=module',
      '-e',
      `await import(${JSON.stringify(path.join(dir, 'index.mjs'))}); console.log(JSON.stringify(globalThis.__registered));`,
    ],
    { cwd: dir, env: { PATH: process.env.PATH ?? '' }, encoding: 'utf8' },
  );
  const registered = JSON.parse(output.trim().split('\n').at(-1)!) as Array<{
    name: string;
    bindings: Record<string, Record<string, unknown>>;
  }>;
  const names = registered.map((f) => f.name).sort();

  const files = readdirSync(path.join(repo, 'functions'))
    .filter((f) => f.endsWith('.ts') && f !== 'index.ts')
    .map((f) => f.replace(/\.ts$/, ''))
    .sort();
  assert.deepEqual(names, files, 'one registered function per file in functions/');

  const triggerOf = (name: string) =>
    Object.values(registered.find((f) => f.name === name)!.bindings).find((b) => String(b.type).endsWith('Trigger'))!;
  const queue = triggerOf('sendMail');
  assert.equal(queue.type, 'queueTrigger');
  assert.equal(queue.queueName, 'mail-outbox');
  assert.equal(queue.connection, 'MailStorage');
  assert.equal(triggerOf('refreshTokens').schedule, '%REFRESH_SCHEDULE%');
  assert.equal(triggerOf('oauthCallback').authLevel, 'anonymous');
  assert.equal(triggerOf('health').authLevel, 'anonymous');
  for (const name of ['authorize', 'admin', 'accountList', 'accountDetail', 'accountTest', 'messages']) {
    assert.equal(triggerOf(name).authLevel, 'function', `${name} needs a function key`);
  }
});
