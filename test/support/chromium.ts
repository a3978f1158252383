/**
 * Headless Chromium for browser tests: Debian's `chromium` package driven by playwright-core (no downloaded
 * browser). CHROMIUM_PATH overrides the location. Without a browser the tests are skipped with a visible
 * notice, except in CI (CI=true), where a missing browser fails the run.
 *
 *   const skip = browserTestsSkipped();          // a notice, or undefined; throws when CI=true
 *   before(async () => { if (!skip) browser = await launchChromium(); });
 *   test('...', { skip }, async () => { ... });
 */
import { accessSync, constants } from 'node:fs';
import { chromium, type Browser } from 'playwright-core';

export const CHROMIUM_PATH = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

const ARGS = [
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  '--disable-quic',
  '--disable-dev-shm-usage',
];

/** Undefined when Chromium can be started; otherwise why not. */
export function chromiumMissing(): string | undefined {
  try {
    accessSync(CHROMIUM_PATH, constants.X_OK);
    return undefined;
  } catch {
    return `Chromium not found at ${CHROMIUM_PATH}: browser tests skipped (install the chromium package or set CHROMIUM_PATH)`;
  }
}

export async function launchChromium(): Promise<Browser> {
  const runningAsRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  return chromium.launch({
    executablePath: CHROMIUM_PATH,
    headless: true,
    // Chromium's sandbox cannot start as root (containers, CI images).
    chromiumSandbox: !runningAsRoot,
    args: runningAsRoot ? [...ARGS, '--no-sandbox'] : ARGS,
    timeout: 30_000,
  });
}

/** The skip notice when Chromium is missing; throws instead when CI=true, where browser tests must run. */
export function browserTestsSkipped(): string | undefined {
  const missing = chromiumMissing();
  if (missing && process.env.CI === 'true') {
    throw new Error(
      `Chromium not found at ${CHROMIUM_PATH}; the browser tests must run in CI (install chromium or set CHROMIUM_PATH)`,
    );
  }
  return missing;
}
