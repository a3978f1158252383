// Bundles functions/ and shared/ into one ESM file, the package.json `main` the Functions host loads.
// ESM, because a CommonJS bundle of the Azure SDKs crashes on `import.meta.url`; the banner gives the
// CommonJS dependencies (nodemailer, ...) the `require` they expect.
import { build } from 'esbuild';

const result = await build({
  entryPoints: ['functions/index.ts'],
  outfile: 'dist/index.mjs',
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  minify: true,
  sourcemap: 'linked',
  legalComments: 'external',
  metafile: true,
  external: ['@azure/functions-core'],
  banner: {
    js: "import { createRequire as __outboxCreateRequire } from 'node:module'; const require = __outboxCreateRequire(import.meta.url);",
  },
  logLevel: 'warning',
});

const bytes = Object.values(result.metafile.outputs).find((o) => o.entryPoint)?.bytes;
console.log(`dist/index.mjs: ${bytes} bytes`);
