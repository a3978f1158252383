/**
 * Which app settings the code reads, found in its source: `process.env.X`, `process.env['X']` and
 * `readSetting(env, 'X')`. A read of `${connection}__clientId` counts as the app's one storage connection
 * (STORAGE_CONNECTION). Used by test/infra.test.ts and test/appSettings.test.ts.
 */
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { STORAGE_CONNECTION } from '../../shared/names';

/** The setting names one source file reads (NODE_ENV, Node's own, left out). */
export function settingsReadIn(source: string): string[] {
  return [
    ...source.matchAll(/process\.env\.([A-Za-z_][\w]*)/g),
    ...source.matchAll(/process\.env\[\s*['"`]([^'"`]+)['"`]\s*\]/g),
    ...source.matchAll(/readSetting\(\s*[\w.]+\s*,\s*['"`]([^'"`]+)['"`]/g),
  ]
    .map((m) => m[1]!.replace(/^\$\{\w+\}(?=__)/, STORAGE_CONNECTION))
    .filter((name) => name !== 'NODE_ENV');
}

/** The TypeScript and JavaScript source files under `dir` (declarations left out), full paths. */
export function sourceFiles(repo: string, dir: string): string[] {
  const root = join(repo, dir);
  if (!existsSync(root)) return [];
  const found: string[] = [];
  const walk = (current: string): void => {
    for (const entry of readdirSync(current, { withFileTypes: true })) {
      const full = join(current, entry.name);
      if (entry.isDirectory()) walk(full);
      else if (/\.(ts|mts|js|mjs)$/.test(entry.name) && !entry.name.endsWith('.d.ts')) found.push(full);
    }
  };
  walk(root);
  return found;
}
