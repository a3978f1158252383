/**
 * infra/ through the real Bicep compiler, offline: `bicep build --no-restore` and `bicep lint --no-restore` on
 * infra/main.bicep (and so on every module it uses), with Bicep's module cache laid out in a temporary HOME from
 * the compiled Azure Verified Modules in ../shared/avm. Any error fails, and so does any warning: a rule may be
 * lowered only in bicepconfig.json, with a justification next to it.
 *
 * Without the CLI or ../shared/avm the test is skipped with a notice saying how to get them, except under CI=true,
 * where it must run (.ci/run installs the CLI). The CLI is found as test/support/bicepCli.ts describes.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test, type TestContext } from 'node:test';
import {
  MIN_BICEP_VERSION,
  REPO,
  avmDirectory,
  cachedReferences,
  compareVersions,
  findBicepCli,
  formatDiagnostic,
  howToGetTheCompiler,
  layOutModuleCache,
  parseSarif,
  parseTextDiagnostics,
  publicReferences,
  runBicep,
  type BicepCli,
  type Diagnostic,
} from './support/bicepCli';
import { listBicepFiles } from './support/bicep';

const IN_CI = process.env.CI === 'true';
const MAIN = join(REPO, 'infra', 'main.bicep');

interface RuleConfig {
  level?: string;
  justification?: string;
}
interface BicepConfig {
  analyzers?: { core?: { enabled?: boolean; rules?: Record<string, RuleConfig> } };
}

const sources = listBicepFiles(join(REPO, 'infra')).map((file) => ({
  path: file
    .slice(REPO.length + 1)
    .split('\\')
    .join('/'),
  source: readFileSync(file, 'utf8'),
}));
const references = publicReferences(sources);
const avmDir = avmDirectory();
const cached = cachedReferences(avmDir);
const cli: BicepCli | undefined = findBicepCli();

let home: string | undefined;
let compiled: Record<string, unknown> | undefined;
let noticeGiven = false;

/** Skips with a notice outside CI; fails under CI=true, where the compile must run. */
function requireTools(t: TestContext, need: { cli?: boolean }): boolean {
  const missing = cached.size === 0 ? 'avm' : need.cli && !cli ? 'cli' : undefined;
  if (!missing) return true;
  assert.ok(!IN_CI, `CI=true: the Bicep compile must run, but ${howToGetTheCompiler(missing)}`);
  if (!noticeGiven) t.diagnostic(`Bicep compile skipped: ${howToGetTheCompiler(missing)}`);
  noticeGiven = true;
  t.skip(missing === 'cli' ? 'no Bicep CLI (see the notice above)' : 'no compiled modules (see the notice above)');
  return false;
}

before(() => {
  if (cached.size === 0 || !cli) return;
  home = mkdtempSync(join(tmpdir(), 'outbox-bicep-'));
  layOutModuleCache(
    home,
    avmDir,
    [...references.keys()].filter((r) => cached.has(r)),
  );
});

after(() => {
  if (home) rmSync(home, { recursive: true, force: true });
});

function bicepConfig(): BicepConfig {
  // bicepconfig.json may hold comments; this one is plain JSON so that a test can read it.
  return JSON.parse(readFileSync(join(REPO, 'bicepconfig.json'), 'utf8')) as BicepConfig;
}

function unexpected(diagnostics: Diagnostic[]): string[] {
  return diagnostics.filter((d) => d.level === 'error' || d.level === 'warning').map(formatDiagnostic);
}

describe('Bicep compiler (offline, real CLI)', () => {
  test('every br/public: module reference has a compiled module to cache', (t) => {
    if (!requireTools(t, {})) return;
    assert.ok(references.size >= 5, `found ${references.size} registry modules under infra/`);
    const missing = [...references].filter(([reference]) => !cached.has(reference));
    assert.deepEqual(
      missing.map(([reference, users]) => `${reference} (used by ${users.join(', ')})`),
      [],
      `no compiled module in ${avmDir} for these references; pick a cached version or add the module there`,
    );
  });

  test(`the CLI is Bicep ${MIN_BICEP_VERSION} or later`, (t) => {
    if (!requireTools(t, { cli: true })) return;
    t.diagnostic(`Bicep CLI ${cli!.version} at ${cli!.path}`);
    assert.ok(compareVersions(cli!.version, MIN_BICEP_VERSION) >= 0, `Bicep ${cli!.version} is older than ${MIN_BICEP_VERSION}`);
  });

  test('bicep build --no-restore compiles infra/main.bicep with no error and no warning', (t) => {
    if (!requireTools(t, { cli: true })) return;
    const out = join(home!, 'main.json');
    const run = runBicep(cli!, ['build', '--no-restore', MAIN, '--outfile', out], home!);
    const diagnostics = parseTextDiagnostics(`${run.stdout}\n${run.stderr}`, REPO);
    assert.deepEqual(unexpected(diagnostics), [], `bicep build:\n${run.stderr}`);
    assert.equal(run.status, 0, `bicep build exited with ${run.status}:\n${run.stderr}`);
    compiled = JSON.parse(readFileSync(out, 'utf8')) as Record<string, unknown>;
  });

  test('bicep lint --no-restore reports no error and no warning', (t) => {
    if (!requireTools(t, { cli: true })) return;
    const run = runBicep(cli!, ['lint', '--no-restore', '--diagnostics-format', 'sarif', MAIN], home!);
    assert.ok(run.stdout.trim().startsWith('{'), `bicep lint printed no SARIF (exit ${run.status}):\n${run.stderr}`);
    const diagnostics = parseSarif(run.stdout, REPO);
    assert.deepEqual(unexpected(diagnostics), [], 'bicep lint');
    assert.equal(run.status, 0, `bicep lint exited with ${run.status}:\n${run.stderr}`);
    const infos = diagnostics.filter((d) => d.level === 'info').map(formatDiagnostic);
    for (const info of infos) t.diagnostic(`lowered in bicepconfig.json: ${info}`);
  });

  test('the compiled template takes the parameters azd maps and gives the outputs the hooks read', (t) => {
    if (!requireTools(t, { cli: true })) return;
    assert.ok(compiled, 'bicep build produced a template');
    assert.match(String(compiled.$schema), /subscriptionDeploymentTemplate\.json#$/);
    const parameters = compiled.parameters as Record<string, { defaultValue?: unknown }>;
    const mapped = (JSON.parse(readFileSync(join(REPO, 'infra', 'main.parameters.json'), 'utf8')) as { parameters: object })
      .parameters;
    for (const name of Object.keys(mapped)) assert.ok(name in parameters, `the template declares ${name}`);
    for (const [name, parameter] of Object.entries(parameters))
      assert.ok('defaultValue' in parameter || name in mapped, `${name} has a default or comes from main.parameters.json`);

    const outputs = new Set(Object.keys(compiled.outputs as object));
    const hooks = ['postprovision.sh', 'postprovision.ps1'].map((f) => readFileSync(join(REPO, 'infra', 'hooks', f), 'utf8'));
    const read = new Set(
      hooks.flatMap((h) => [...h.matchAll(/\$\{([A-Z][A-Z0-9_]*)|\$env:([A-Z][A-Z0-9_]*)/g)].map((m) => (m[1] ?? m[2])!)),
    );
    for (const name of read) assert.ok(outputs.has(name), `the template outputs ${name}, which a hook reads`);
  });

  test("the function app's deployment waits for its role assignments (no 403 on the first publish)", (t) => {
    if (!requireTools(t, { cli: true })) return;
    assert.ok(compiled, 'bicep build produced a template');
    const resources = compiled.resources as
      | Record<string, { type: string; name: string; dependsOn?: string[] }>
      | Array<{ type: string; name: string; dependsOn?: string[] }>;
    const list = Array.isArray(resources) ? resources : Object.values(resources);
    const variables = (compiled.variables ?? {}) as Record<string, unknown>;
    // A deployment name is a literal or a variable: `[variables('serviceName')]`.
    const nameOf = (name: string) => {
      const variable = /^\[variables\('(\w+)'\)\]$/.exec(name)?.[1];
      return variable ? String(variables[variable]) : name;
    };
    const api = list.find((r) => r.type === 'Microsoft.Resources/deployments' && nameOf(r.name) === 'api');
    assert.ok(api, 'main.bicep deploys the module "api"');
    assert.ok(
      (api.dependsOn ?? []).some((d) => /'Microsoft\.Resources\/deployments', 'rbacAssignments'\)\]$/.test(d)),
      `api depends on the role assignments; dependsOn: ${JSON.stringify(api.dependsOn)}`,
    );
  });
});

describe('bicepconfig.json', () => {
  test('every linter rule it lowers says why', () => {
    const rules = bicepConfig().analyzers?.core?.rules ?? {};
    assert.notEqual(bicepConfig().analyzers?.core?.enabled, false, 'the linter is on');
    const unjustified = Object.entries(rules)
      .filter(([, rule]) => rule.level === 'off' || rule.level === 'info' || rule.level === 'none')
      .filter(([, rule]) => (rule.justification ?? '').trim().length < 20)
      .map(([name]) => name);
    assert.deepEqual(unjustified, [], 'lowered without a justification');
  });

  test('no diagnostic is switched off inside the templates', () => {
    const inline = sources.flatMap((file) =>
      file.source
        .split('\n')
        .map((line, i) => ({ line, at: `${file.path}:${i + 1}` }))
        .filter(({ line }) => /#disable-(next-line|diagnostics)\b/.test(line))
        .map(({ at, line }) => `${at}: ${line.trim()}`),
    );
    assert.deepEqual(inline, [], 'lower the rule in bicepconfig.json with a justification instead');
  });
});
