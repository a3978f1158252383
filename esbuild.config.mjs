// `npm run build`: bundles functions/ and shared/ into one ESM file, then lays out the deployment package.
//
// dist/index.mjs          the bundle, the package.json `main` the Functions host loads locally (func start);
// dist/index.mjs.map      its source map, and dist/index.mjs.meta.json what went into it (neither is deployed);
// dist/package/           what azd uploads (azure.yaml `dist`), only what runs: the bundle, host.json and a
//                         package.json without scripts or dependencies (all of them are inside the bundle).
//
// ESM, because a CommonJS bundle of the Azure SDKs crashes on `import.meta.url`; the banner gives the
// CommonJS dependencies (nodemailer, ...) the `require` they expect.
import { build } from 'esbuild';
import { copyFileSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';

// A clean dist/ each time: nothing left over from an earlier build can reach the package.
rmSync('dist', { recursive: true, force: true });

const result = await build({
  entryPoints: ['functions/index.ts'],
  outfile: 'dist/index.mjs',
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  minify: true,
  // The map stays beside the bundle for reading stack traces; the package does not carry it.
  sourcemap: 'external',
  // Licence notices of the bundled packages travel inside the bundle.
  legalComments: 'eof',
  metafile: true,
  // Provided by the Functions host at run time.
  external: ['@azure/functions-core'],
  banner: {
    js: "import { createRequire as __outboxCreateRequire } from 'node:module'; const require = __outboxCreateRequire(import.meta.url);",
  },
  logLevel: 'warning',
});

const bytes = Object.values(result.metafile.outputs).find((o) => o.entryPoint)?.bytes;
console.log(`dist/index.mjs: ${bytes} bytes`);
// What went into the bundle, for tests and for size analysis (https://esbuild.github.io/analyze/).
writeFileSync('dist/index.mjs.meta.json', JSON.stringify(result.metafile));

// The deployment package. Every dependency is bundled, so the package.json names none: nothing is installed on
// the server (azure.yaml remoteBuild: false), and no dev dependency can slip in.
const root = JSON.parse(readFileSync('package.json', 'utf8'));
const packageJson = {
  name: root.name,
  version: root.version,
  description: root.description,
  license: root.license,
  private: true,
  type: 'module',
  main: 'index.mjs',
  engines: root.engines,
};
mkdirSync('dist/package', { recursive: true });
copyFileSync('dist/index.mjs', 'dist/package/index.mjs');
copyFileSync('host.json', 'dist/package/host.json');
writeFileSync('dist/package/package.json', `${JSON.stringify(packageJson, null, 2)}\n`);
console.log('dist/package: index.mjs, host.json, package.json');
