// Test launcher: `node test/support/runTests.mjs [filter ...] [--node-test-option ...]`.
// Makes sure the test CA exists, then runs test/*.test.ts (sorted, one file at a time) with
// NODE_EXTRA_CA_CERTS pointing at the CA, so that every TLS client in the tests trusts the local test servers.
// Filters keep the files whose path contains any of them; arguments starting with "--" go to `node --test`.
import { spawn } from 'node:child_process';
import { readdir } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { DEFAULT_TEST_CA_DIR, ensureTestCaFiles } from './testCa.mjs';

const root = fileURLToPath(new URL('../../', import.meta.url));
const args = process.argv.slice(2);
const nodeTestOptions = args.filter((arg) => arg.startsWith('--'));
const filters = args.filter((arg) => !arg.startsWith('--'));

const files = (await readdir(new URL('../', import.meta.url), { withFileTypes: true }))
  .filter((entry) => entry.isFile() && entry.name.endsWith('.test.ts'))
  .map((entry) => `test/${entry.name}`)
  .sort()
  .filter((file) => filters.length === 0 || filters.some((filter) => file.includes(filter)));

if (files.length === 0) {
  console.error(filters.length === 0 ? 'No test/*.test.ts files found.' : `No test file matches: ${filters.join(', ')}`);
  process.exit(1);
}

const { caPath } = await ensureTestCaFiles(DEFAULT_TEST_CA_DIR);

// Node reads NODE_EXTRA_CA_CERTS once, at start-up: hence the child process.
const child = spawn(process.execPath, ['--import', 'tsx', '--test', '--test-concurrency=1', ...nodeTestOptions, ...files], {
  cwd: root,
  stdio: 'inherit',
  env: { ...process.env, NODE_EXTRA_CA_CERTS: caPath },
});

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => child.kill(signal));
}

child.on('error', (error) => {
  console.error(`Could not start the test runner: ${error.message}`);
  process.exit(1);
});

child.on('exit', (code, signal) => {
  process.exit(code ?? (signal ? 1 : 0));
});
