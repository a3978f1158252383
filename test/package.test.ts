/**
 * The deployment package as azd builds and uploads it (test/support/azdProject.ts reproduces azd's packaging):
 * `npm run build`, then a zip of the service's `dist` folder. It must hold only what runs, stay small, and load
 * in the Functions host's way (package.json `main`).
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  azdZipEntries,
  excludesNodeModules,
  ignorePatterns,
  readSimpleYaml,
  resolveRemoteBuild,
  unzipNames,
  zip,
  type AzdService,
  type PackageEntry,
} from './support/azdProject';
import { REPO } from './support/bicepCli';

const MB = 1024 * 1024;
/** The first azd that honours `remoteBuild` (Azure/azure-dev, service_config.go at azure-dev-cli_1.23.5). */
const AZD_FLOOR = '1.23.5';

const yaml = readSimpleYaml(readFileSync(join(REPO, 'azure.yaml'), 'utf8'));
const service = (yaml.services as Record<string, AzdService>).api!;
const work = mkdtempSync(join(tmpdir(), 'outbox-package-'));
let entries: PackageEntry[];
let archive: Buffer;

before(() => {
  // What azd runs before packaging (npm install is already done here).
  execFileSync('npm', ['run', 'build'], { cwd: REPO, stdio: 'pipe' });
  const remoteBuild = resolveRemoteBuild(join(REPO, service.project ?? '.'), service);
  entries = azdZipEntries(join(REPO, service.project ?? '.', service.dist ?? ''), remoteBuild);
  archive = zip(entries);
});

after(() => rmSync(work, { recursive: true, force: true }));

describe('azure.yaml', () => {
  test(`declares the azd floor the design needs (${AZD_FLOOR}) and a package of built files`, () => {
    const required = (yaml.requiredVersions as Record<string, string> | undefined)?.azd;
    assert.equal(required, `>= ${AZD_FLOOR}`, 'requiredVersions.azd');
    assert.equal(service.remoteBuild, false, 'the bundle is what runs: no build on the server');
    assert.equal(service.dist, 'dist/package', 'azd zips the folder the build fills, not the project');
    assert.equal(service.language, 'ts');
    assert.equal(service.host, 'function');
  });

  test('azd accepts the ignore files: the project one leaves node_modules alone, the package has none', () => {
    // azd 1.23.12 and later refuse remoteBuild: false when the project's .funcignore excludes node_modules.
    assert.equal(excludesNodeModules(ignorePatterns(join(REPO, '.funcignore'))), false);
    assert.doesNotThrow(() => resolveRemoteBuild(REPO, service));
    // Before 1.23.13 a `!` pattern dropped what it meant to keep; the package folder needs no ignore file at all.
    assert.ok(!ignorePatterns(join(REPO, '.funcignore')).some((p) => p.startsWith('!')), 'no ! pattern');
    assert.deepEqual(
      entries.filter((e) => e.name.endsWith('.funcignore')),
      [],
    );
  });

  test('the reading of .funcignore agrees with gitignore on the patterns that matter', () => {
    assert.equal(excludesNodeModules(['node_modules']), true);
    assert.equal(excludesNodeModules(['/node_modules/']), true);
    assert.equal(excludesNodeModules(['*']), true);
    assert.equal(excludesNodeModules(['node_modules', '!node_modules']), false);
    assert.equal(excludesNodeModules(['node_modules/.bin', '*.ts', 'dist/**']), false);
  });
});

describe('the package azd uploads', () => {
  test('holds exactly the bundle, host.json and package.json', (t) => {
    assert.deepEqual(entries.map((e) => e.name).sort(), ['host.json', 'index.mjs', 'package.json']);
    assert.deepEqual(unzipNames(archive).sort(), ['host.json', 'index.mjs', 'package.json'], 'the zip holds them');
    t.diagnostic(`zip ${(archive.length / MB).toFixed(2)} MB, ${entries.length} entries`);
  });

  test('is under 5 MB zipped', () => {
    assert.ok(archive.length < 5 * MB, `${(archive.length / MB).toFixed(2)} MB`);
  });

  test('its package.json points at the bundle and names no dependency and no script', () => {
    const pkg = JSON.parse(readFileSync(join(REPO, service.dist!, 'package.json'), 'utf8')) as Record<string, unknown>;
    const root = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as Record<string, unknown>;
    assert.equal(pkg.main, 'index.mjs');
    assert.equal(pkg.type, 'module');
    assert.equal(pkg.name, root.name);
    assert.equal(pkg.version, root.version);
    for (const key of ['dependencies', 'devDependencies', 'optionalDependencies', 'peerDependencies', 'scripts'])
      assert.ok(!(key in pkg), `no ${key}: everything runs from the bundle, nothing is installed on the server`);
  });

  test("its host.json is the project's", () => {
    assert.deepEqual(
      JSON.parse(readFileSync(join(REPO, service.dist!, 'host.json'), 'utf8')),
      JSON.parse(readFileSync(join(REPO, 'host.json'), 'utf8')),
    );
  });

  test('request telemetry carries no query string (authorization code, state, function key)', () => {
    // Application Insights gets request telemetry from the Functions host alone: its WebJobsTelemetryInitializer
    // cuts the query string off the URL unless logging.applicationInsights.enableQueryStringTracing is true
    // (Azure/azure-webjobs-sdk, ApplicationInsightsLoggerOptions). host.json pins it off.
    const host = JSON.parse(readFileSync(join(REPO, service.dist!, 'host.json'), 'utf8')) as {
      telemetryMode?: string;
      logging?: { applicationInsights?: { enableQueryStringTracing?: boolean } };
    };
    assert.equal(host.logging?.applicationInsights?.enableQueryStringTracing, false);
    // OpenTelemetry mode records requests through other code, which this check does not cover.
    assert.notEqual(host.telemetryMode?.toLowerCase(), 'opentelemetry', 'telemetryMode OpenTelemetry needs its own review');
    // No telemetry SDK in the worker: it would record requests of its own, query strings included.
    const meta = JSON.parse(readFileSync(join(REPO, 'dist', 'index.mjs.meta.json'), 'utf8')) as {
      inputs: Record<string, unknown>;
    };
    const sdks = Object.keys(meta.inputs).filter((input) =>
      /node_modules\/(applicationinsights|@opentelemetry|@azure\/monitor-opentelemetry|@azure\/functions-opentelemetry)/.test(
        input,
      ),
    );
    assert.deepEqual([...new Set(sdks.map((s) => /node_modules\/((@[^/]+\/)?[^/]+)/.exec(s)![1]))], []);
  });

  test('loads as the host loads it: package.json main, every function registered, nothing else needed', () => {
    const dir = join(work, 'wwwroot');
    mkdirSync(dir, { recursive: true });
    for (const entry of entries) copyFileSync(entry.source, join(dir, entry.name));
    // The host provides @azure/functions-core; this stand-in records the registrations.
    const core = join(dir, 'node_modules', '@azure', 'functions-core');
    mkdirSync(core, { recursive: true });
    writeFileSync(join(core, 'package.json'), JSON.stringify({ name: '@azure/functions-core', main: 'index.js' }));
    writeFileSync(
      join(core, 'index.js'),
      'globalThis.__registered = []; module.exports = { version: "test", setProgrammingModel() {}, registerHook() { return { dispose() {} }; }, log() {}, registerFunction(m) { globalThis.__registered.push(m.name); return { dispose() {} }; } };',
    );
    const main = (JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { main: string }).main;
    const output = execFileSync(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        `await import(${JSON.stringify(join(dir, main))}); console.log(JSON.stringify(globalThis.__registered));`,
      ],
      { cwd: dir, env: { PATH: process.env.PATH ?? '' }, encoding: 'utf8' },
    );
    const registered = JSON.parse(output.trim().split('\n').at(-1)!) as string[];
    assert.ok(registered.length >= 8, `registered: ${registered.join(', ')}`);
    assert.ok(registered.includes('sendMail') && registered.includes('oauthCallback'), registered.join(', '));
  });
});
