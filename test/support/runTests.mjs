// Test launcher: `node test/support/runTests.mjs [filter ...] [--node-test-option ...]`.
// Makes sure the test CA exists, then runs test/*.test.ts (sorted, one file at a time) with
// NODE_EXTRA_CA_CERTS pointing at the CA, so that every TLS client in the tests trusts the local test servers.
// Filters keep the files whose path contains any of them; arguments starting with "--" go to `node --test`.
// Each file gets TEST_FILE_TIMEOUT_SECONDS (default 480) and is stopped after that; `--test-force-exit` ends a
// file's process once its tests have reported, so a handle left open cannot keep the run alive.
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

const fileTimeoutMs = Number(process.env.TEST_FILE_TIMEOUT_SECONDS ?? 480) * 1000;
let current;
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    current?.kill(signal);
    process.exit(1);
  });
}

// Node reads NODE_EXTRA_CA_CERTS once, at start-up: hence the child process, one per file.
function runFile(file) {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', '--test', '--test-force-exit', ...nodeTestOptions, file], {
      cwd: root,
      stdio: 'inherit',
      env: { ...process.env, NODE_EXTRA_CA_CERTS: caPath },
      detached: true,
    });
    current = child;
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      console.error(`# ${file}: stopped after ${fileTimeoutMs / 1000} s (TEST_FILE_TIMEOUT_SECONDS)`);
      // The whole process group: the file's own test process and what it started (Azurite, servers, a browser).
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {
        child.kill('SIGKILL');
      }
    }, fileTimeoutMs);
    child.on('error', (error) => {
      clearTimeout(timer);
      console.error(`Could not start the test runner: ${error.message}`);
      resolve({ file, ok: false, timedOut: false });
    });
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      resolve({ file, ok: !timedOut && code === 0 && !signal, timedOut });
    });
  });
}

const started = Date.now();
const failed = [];
for (const file of files) {
  const result = await runFile(file);
  if (!result.ok) failed.push(result.timedOut ? `${file} (timed out)` : file);
}
const seconds = Math.round((Date.now() - started) / 1000);
console.log(
  `# ${files.length} test file(s) in ${seconds} s; ${failed.length} failed${failed.length ? `: ${failed.join(', ')}` : ''}`,
);
process.exit(failed.length === 0 ? 0 : 1);
