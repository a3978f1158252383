/**
 * infra/ through the real Bicep compiler, offline: `bicep build --no-restore` and `bicep lint --no-restore` on
 * infra/main.bicep (and so on every module it uses), with Bicep's module cache laid out in a temporary HOME from
 * the compiled Azure Verified Modules in ../shared/avm. Any error fails, and so does any warning: a rule may be
 * lowered only in bicepconfig.json, with a justification next to it.
 *
 * Without the CLI or ../shared/avm the test is skipped with a notice saying how to get them, except under CI=true,
 * where it must run (.ci/run installs the CLI). The CLI is found as test/support/bicepCli.ts describes.
 *
 * The compiled template, with every module inlined, is also held against the retirements Microsoft has announced
 * for what it deploys (RETIREMENTS below), so that a module update or a copied snippet cannot bring back an API
 * version or a setting that stops working on a known day.
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
    assert.ok(references.size >= 3, `found ${references.size} registry modules under infra/`);
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

  test('the compiled template uses nothing whose retirement is announced (see RETIREMENTS)', (t) => {
    if (!requireTools(t, { cli: true })) return;
    assert.ok(compiled, 'bicep build produced a template');
    const found = compiledResources(compiled);
    assert.ok(found.length > 20, `walked ${found.length} resources, nested deployments included`);
    const problems = RETIREMENTS.flatMap((rule) => rule.check(found, compiled!).map((p) => `${rule.what}: ${p}`));
    assert.deepEqual(problems, []);
    // The checks look at something: the vault, the storage account and the function app's siteConfig are there.
    const deployed = (type: string) => found.filter((r) => r.type === type && !r.existing).length;
    assert.equal(deployed('Microsoft.KeyVault/vaults'), 1);
    assert.equal(deployed('Microsoft.Storage/storageAccounts'), 1);
    assert.ok(
      found.some(
        (r) => typeof (r.properties?.parameters as { siteConfig?: { value?: unknown } })?.siteConfig?.value === 'object',
      ),
      'the function app module gets a siteConfig object',
    );
  });

  test('a workbook and at least three log search alert rules, which mail the alert receivers', (t) => {
    if (!requireTools(t, { cli: true })) return;
    assert.ok(compiled, 'bicep build produced a template');
    const found = compiledResources(compiled);
    const of = (type: string) => found.filter((r) => r.type.toLowerCase() === type.toLowerCase() && !r.existing);
    const workbooks = of('Microsoft.Insights/workbooks');
    assert.equal(workbooks.length, 1, 'one workbook');
    assert.match(String(workbooks[0]!.properties?.serializedData), /string\(variables\('workbookContent'\)\)|Notebook\/1\.0/);
    const rules = of('Microsoft.Insights/scheduledQueryRules');
    const ruleCount = rules.reduce((n, r) => n + (r.copyCount ?? 1), 0);
    assert.ok(ruleCount >= 3, `${ruleCount} scheduledQueryRules`);
    assert.ok(of('Microsoft.Insights/actionGroups').length === 1, 'an action group for the receivers');
  });
});

/** A resource of the compiled template or of any deployment nested in it. */
interface CompiledResource {
  type: string;
  apiVersion: string;
  existing: boolean;
  properties?: Record<string, unknown>;
  /** Copy loops: how many (when the count is a literal). */
  copyCount?: number;
  /** Where it was found, for messages. */
  at: string;
}

function compiledResources(template: Record<string, unknown>, at = 'main'): CompiledResource[] {
  const list = template.resources as Record<string, Record<string, unknown>> | Array<Record<string, unknown>> | undefined;
  const entries = Array.isArray(list) ? list.map((r, i) => [String(i), r] as const) : Object.entries(list ?? {});
  const variables = (template.variables ?? {}) as Record<string, unknown>;
  // A copy loop over a variable of the same template: `[length(variables('rules'))]`.
  const countOf = (copy: unknown): number | undefined => {
    const count = (copy as { count?: unknown } | undefined)?.count;
    if (typeof count === 'number') return count;
    const variable = /^\[length\(variables\('(\w+)'\)\)\]$/.exec(String(count))?.[1];
    const value = variable ? variables[variable] : undefined;
    return Array.isArray(value) ? value.length : undefined;
  };
  return entries.flatMap(([name, r]) => {
    const here: CompiledResource = {
      type: String(r.type),
      apiVersion: String(r.apiVersion ?? ''),
      existing: r.existing === true,
      properties: r.properties as Record<string, unknown> | undefined,
      copyCount: countOf(r.copy),
      at: `${at}/${name}`,
    };
    const nested = (r.properties as { template?: Record<string, unknown> } | undefined)?.template;
    return [here, ...(nested ? compiledResources(nested, `${at}/${name}`) : [])];
  });
}

/** Literal object keys anywhere in the template (app settings written as objects show up here). */
function objectKeys(template: unknown): Set<string> {
  const keys = new Set<string>();
  const visit = (value: unknown): void => {
    if (Array.isArray(value)) value.forEach(visit);
    else if (value && typeof value === 'object')
      for (const [key, inner] of Object.entries(value)) {
        keys.add(key);
        visit(inner);
      }
  };
  visit(template);
  return keys;
}

/** Every expression string of the template that names the namespace, with the API versions written in it. */
function versionsInExpressions(template: unknown, namespace: string): string[] {
  const found: string[] = [];
  const visit = (value: unknown): void => {
    if (typeof value === 'string') {
      if (value.toLowerCase().includes(namespace.toLowerCase()))
        for (const m of value.matchAll(/'(\d{4}-\d{2}-\d{2}(?:-preview)?)'/g)) found.push(m[1]!);
    } else if (Array.isArray(value)) value.forEach(visit);
    else if (value && typeof value === 'object') Object.values(value).forEach(visit);
  };
  visit(template);
  return found;
}

interface Retirement {
  what: string;
  check(resources: CompiledResource[], template: Record<string, unknown>): string[];
}

/**
 * Announced retirements that touch this template, each with its source. Checked, and not found to touch it: API
 * version retirements for Microsoft.Storage, Microsoft.Web, Microsoft.OperationalInsights and the other
 * Microsoft.Insights types used here (none announced); Linux Consumption (retires 2028-09-30; this is Flex
 * Consumption, test/infra.test.ts holds the plan at FC1); Azure Functions Proxies (2025-09-30; not used).
 */
const RETIREMENTS: Retirement[] = [
  {
    // "Update the Azure Key Vault API version you use" (Microsoft Learn): every control-plane version before
    // 2026-02-01 retires on 2027-02-27, no extension. Data-plane versions (the app's SDK) are not affected.
    what: 'Key Vault control-plane API versions before 2026-02-01 (retire 2027-02-27)',
    check: (resources, template) => [
      ...resources
        .filter((r) => r.type.toLowerCase().startsWith('microsoft.keyvault/') && r.apiVersion < '2026-02-01')
        .map((r) => `${r.type}@${r.apiVersion} at ${r.at}`),
      ...versionsInExpressions(template, 'Microsoft.KeyVault')
        .filter((v) => v < '2026-02-01')
        .map((v) => `an expression naming Microsoft.KeyVault uses ${v}`),
    ],
  },
  {
    // "Legacy Log Analytics Alert REST API" (Microsoft Learn): retired 2025-10-01; log search alerts are
    // Microsoft.Insights/scheduledQueryRules, in the shape of 2021-08-01 and later (criteria.allOf with a query).
    what: 'legacy Log Analytics alerts (retired 2025-10-01) or scheduledQueryRules before 2021-08-01',
    check: (resources) => [
      ...resources
        .filter((r) => /^microsoft\.operationalinsights\/workspaces\/(savedsearches\/schedules|alertsversion)/i.test(r.type))
        .map((r) => `${r.type} at ${r.at}`),
      ...resources
        .filter((r) => r.type.toLowerCase() === 'microsoft.insights/scheduledqueryrules' && r.apiVersion < '2021-08-01')
        .map((r) => `${r.type}@${r.apiVersion} at ${r.at}`),
    ],
  },
  {
    // "Migrate diagnostic settings storage retention to Azure Storage lifecycle management" (Microsoft Learn):
    // retention in diagnostic settings stopped working on 2025-09-30.
    what: 'retentionPolicy in diagnostic settings (disabled 2025-09-30)',
    check: (resources) =>
      resources
        .filter((r) => r.type.toLowerCase() === 'microsoft.insights/diagnosticsettings')
        .filter((r) => JSON.stringify(r.properties ?? {}).includes('retentionPolicy'))
        .map((r) => r.at),
  },
  {
    // Classic Application Insights retired 2024-02-29 (workspace-based only); instrumentation key ingestion lost
    // support on 2025-03-31 ("Connection strings in Application Insights", Microsoft Learn).
    what: 'classic Application Insights (retired 2024-02-29) or instrumentation-key ingestion (unsupported since 2025-03-31)',
    check: (resources, template) => [
      ...resources
        .filter((r) => r.type.toLowerCase() === 'microsoft.insights/components' && !r.existing)
        .filter((r) => !r.properties?.WorkspaceResourceId)
        .map((r) => `${r.at} is not workspace-based`),
      ...(objectKeys(template).has('APPINSIGHTS_INSTRUMENTATIONKEY') ? ['an app setting APPINSIGHTS_INSTRUMENTATIONKEY'] : []),
    ],
  },
  {
    // Azure Storage stopped accepting TLS 1.0 and 1.1 on 2026-02-03.
    what: 'storage accounts that accept TLS below 1.2 (ended 2026-02-03)',
    check: (resources) =>
      resources
        .filter((r) => r.type.toLowerCase() === 'microsoft.storage/storageaccounts' && !r.existing)
        .filter((r) => r.properties?.minimumTlsVersion !== 'TLS1_2')
        .map((r) => `${r.at}: minimumTlsVersion ${String(r.properties?.minimumTlsVersion)}`),
  },
  {
    // "Set the minimum TLS version" (App Service, Microsoft Learn): inbound TLS 1.0 and 1.1 retire on 2027-05-31,
    // and creating or updating an app with minTlsVersion or scmMinTlsVersion below 1.2 may fail after it.
    what: 'function app TLS minimum below 1.2 (inbound TLS 1.0/1.1 retire 2027-05-31)',
    check: (resources) =>
      resources
        .filter((r) => r.type.toLowerCase() === 'microsoft.resources/deployments')
        .flatMap((r) => {
          const siteConfig = (r.properties?.parameters as { siteConfig?: { value?: Record<string, unknown> } } | undefined)
            ?.siteConfig?.value;
          // The site module's own nested deployments pass siteConfig on as an expression; ours is an object.
          if (!siteConfig || typeof siteConfig !== 'object') return [];
          return ['minTlsVersion', 'scmMinTlsVersion']
            .filter((key) => siteConfig[key] !== '1.2' && siteConfig[key] !== '1.3')
            .map((key) => `${r.at}: siteConfig.${key} is ${String(siteConfig[key])}`);
        }),
  },
];

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
