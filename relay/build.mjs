// Bundles the relay (relay/main.ts and everything it imports) into one ESM file that runs with plain Node, no
// node_modules: what the container image ships. `npm run build:relay [-- --outfile=path]` (default dist/relay.mjs),
// with its SHA-256 next to it (relay.mjs.sha256, as `sha256sum -c` reads it) for whoever downloads the file.
// The banner gives the CommonJS dependencies (nodemailer, smtp-server's helpers, ...) the `require` they expect.
import { build } from 'esbuild';
import { createHash } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));

/**
 * How the bundle is run by the Dockerfile and relay/oauth-outbox-relay.service (a test keeps them in step, and
 * the benchmark measures the relay so): a small young generation and two malloc arenas keep the resident
 * memory of a process that streams buffers about 35 MB lower, at the same CPU per message.
 */
export const RELAY_RUNTIME = Object.freeze({
  nodeOptions: Object.freeze(['--max-semi-space-size=1']),
  env: Object.freeze({ MALLOC_ARENA_MAX: '2' }),
});

export async function buildRelay(outfile = 'dist/relay.mjs') {
  const result = await build({
    absWorkingDir: root,
    entryPoints: ['relay/main.ts'],
    outfile,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    minify: true,
    sourcemap: 'linked',
    legalComments: 'external',
    metafile: true,
    banner: {
      js: "import { createRequire as __relayCreateRequire } from 'node:module'; const require = __relayCreateRequire(import.meta.url);",
    },
    logLevel: 'warning',
  });
  return Object.values(result.metafile.outputs).find((o) => o.entryPoint)?.bytes ?? 0;
}

/** Writes `<file>.sha256` in sha256sum's format and returns the hash. */
export async function writeChecksum(file) {
  const hash = createHash('sha256')
    .update(await readFile(path.resolve(root, file)))
    .digest('hex');
  await writeFile(path.resolve(root, `${file}.sha256`), `${hash}  ${path.basename(file)}\n`);
  return hash;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const outfile = process.argv.find((a) => a.startsWith('--outfile='))?.slice('--outfile='.length) ?? 'dist/relay.mjs';
  const bytes = await buildRelay(outfile);
  const hash = await writeChecksum(outfile);
  console.log(`${outfile}: ${bytes} bytes, SHA-256 ${hash} (also in ${outfile}.sha256)`);
}
