/**
 * Every setting the code reads reaches Azure, and every parameter of the template is reachable: the code's settings
 * (shared/settings.ts, and what functions/ and shared/ read) against infra/app/api.bicep, infra/main.bicep,
 * infra/main.parameters.json and the parameters table of docs/deployment.md.
 *
 * Each setting is exactly one of: written by the template on every provision (the connections); written from an azd
 * environment variable of the same name when it is set (a Bicep parameter mapped in main.parameters.json, in the
 * docs' table with the code's default); set by the platform; or for local runs and tests only. The docs name all.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, test } from 'node:test';
import { testEmailWaitMs } from '../shared/admin/testEmailOutcome';
import { resultEvents } from '../shared/app';
import { DEFAULT_MESSAGE_EXPIRY_DAYS, policyFromSettings } from '../shared/delivery/policy';
import { STORAGE_CONNECTION } from '../shared/names';
import { APP_SETTINGS } from '../shared/settings';
import { refreshConcurrency, refreshSchedule, refreshSpreadMs } from '../shared/tokens/refreshSchedule';
import { declarations, find, literal, property, readBicep, resources, type BicepFile } from './support/bicep';
import { settingGroup } from './support/bicepAppSettings';
import { settingsReadIn, sourceFiles } from './support/settingsRead';

const repo = join(import.meta.dirname, '..');
const read = (file: string) => readFileSync(join(repo, file), 'utf8');
const doc = read('docs/deployment.md');
const mapped = (JSON.parse(read('infra/main.parameters.json')) as { parameters: Record<string, { value: string }> }).parameters;

/** Set by App Service itself. */
const PLATFORM = ['WEBSITE_HOSTNAME', 'WEBSITE_AUTH_ENABLED'];
/** Read by the code only outside Azure: local runs (files, Azurite connection strings) and tests. */
const LOCAL_ONLY = [
  'MAIL_ACCOUNTS_FILE',
  'LOCAL_SECRETS_FILE',
  STORAGE_CONNECTION,
  'AzureWebJobsStorage',
  'KEY_VAULT_DISABLE_CHALLENGE_VERIFICATION',
];
/** Parameters azd does not set: found by Bicep (deployer()) or name overrides for a fork's main.parameters.json. */
const NOT_FROM_AZD = [
  'principalId',
  'resourceGroupName',
  'apiServiceName',
  'apiUserAssignedIdentityName',
  'appServicePlanName',
  'storageAccountName',
  'keyVaultName',
  'logAnalyticsName',
  'applicationInsightsName',
  'actionGroupName',
];

/** The code's own default of each setting with an azd variable, asked of the code rather than copied. */
const DAY_MS = 24 * 3600 * 1000;
const CODE_DEFAULTS: Record<string, string> = {
  MESSAGE_EXPIRY_DAYS: String(policyFromSettings({}).maxAgeMs / DAY_MS),
  TEST_EMAIL_WAIT_SECONDS: String(testEmailWaitMs({}) / 1000),
  RESULT_EVENTS: resultEvents({}),
  REFRESH_SCHEDULE: refreshSchedule({}),
  REFRESH_SPREAD_MINUTES: String(refreshSpreadMs({}) / 60_000),
  REFRESH_CONCURRENCY: String(refreshConcurrency({})),
  MAIL_ACCOUNTS: '[]',
};

/** Every setting name functions/ and shared/ read. */
function settingsTheCodeReads(): Set<string> {
  return new Set(
    ['functions', 'shared'].flatMap((dir) =>
      sourceFiles(repo, dir).flatMap((file) => settingsReadIn(readFileSync(file, 'utf8'))),
    ),
  );
}

/** `${NAME=default}` → { variable: NAME, default }. */
function azdVariable(value: string): { variable: string; defaultValue: string | undefined } {
  const m = /^\$\{([A-Z][A-Z0-9_]*)(?:=([^}]*))?\}$/.exec(value);
  assert.ok(m, `${value} names an azd environment variable`);
  return { variable: m[1]!, defaultValue: m[2] };
}

/** The row of the docs' parameters table whose first cell is the variable. */
function docRow(variable: string): string[] | undefined {
  const line = doc.split('\n').find((l) => l.startsWith(`| \`${variable}\` `));
  return line
    ?.split('|')
    .slice(1, -1)
    .map((cell) => cell.trim());
}

/** `MailStorage__clientId`, or in a list that starts with a sibling, `MailStorage__…` and then `__clientId`. */
function namedIn(text: string, name: string): boolean {
  if (text.includes(`\`${name}\``)) return true;
  const [connection, part] = name.split('__');
  return part !== undefined && new RegExp(`\`${connection}__\\w+\`[^.]*\`__${part}\``).test(text);
}

let api: BicepFile;
let main: BicepFile;

before(async () => {
  api = await readBicep(join(repo, 'infra/app/api.bicep'), repo);
  main = await readBicep(join(repo, 'infra/main.bicep'), repo);
});

describe('settings the code reads', () => {
  test('are all declared in shared/settings.ts, and each is of exactly one kind', () => {
    const declared = new Set(APP_SETTINGS.map((s) => s.name));
    const reads = settingsTheCodeReads();
    assert.ok(reads.size >= 15, `found ${reads.size} settings read`);
    assert.deepEqual(
      [...reads].filter((name) => !declared.has(name)),
      [],
      'read but not declared',
    );

    const connections = settingGroup(api, 'connectionSettings');
    const fromAzd = settingGroup(api, 'azdEnvironmentSettings');
    for (const { name, required } of APP_SETTINGS) {
      const kinds = [
        connections.has(name) && 'written on every provision',
        fromAzd.has(name) && 'from the azd environment',
        PLATFORM.includes(name) && 'set by the platform',
        LOCAL_ONLY.includes(name) && 'local and tests only',
      ].filter(Boolean);
      assert.equal(kinds.length, 1, `${name}: ${kinds.join(', ') || 'reaches Azure in no way'}`);
      if (LOCAL_ONLY.includes(name)) assert.equal(required, 'optional', `${name} is not set in Azure, so it must be optional`);
      assert.ok(namedIn(doc, name), `docs/deployment.md names ${name}`);
    }
  });

  test("each one with an azd variable: a parameter of the same name in main.parameters.json, and in the docs with the code's default", () => {
    const fromAzd = settingGroup(api, 'azdEnvironmentSettings');
    const apiModule = resources(main).find((r) => r.name === 'api')!;
    for (const [setting, expression] of fromAzd) {
      // The value is the api.bicep parameter (or a function of it): `string(mailAccounts)`, `givenBaseUrl`.
      const apiParam = declarations(api)
        .filter((d) => d.kind === 'param')
        .map((d) => d.name)
        .find((name) => new RegExp(`\\b${name}\\b`).test(expression === 'givenBaseUrl' ? 'publicBaseUrl' : expression));
      assert.ok(apiParam, `${setting}: written from a parameter of api.bicep (${expression})`);
      assert.equal(property(apiModule.body, `params.${apiParam}`)?.text, apiParam, `main.bicep passes its ${apiParam}`);
      assert.ok(find(main, 'param', apiParam), `main.bicep declares ${apiParam}`);
      assert.ok(mapped[apiParam], `main.parameters.json maps ${apiParam}`);
      const { variable } = azdVariable(mapped[apiParam]!.value);
      assert.equal(variable, setting, `the azd variable of ${apiParam} is named as the setting`);

      const row = docRow(variable);
      assert.ok(row, `docs/deployment.md's parameters table has a row for ${variable}`);
      assert.equal(row[1]!.replace(/ \(.*\)$/, ''), `\`${apiParam}\``, `${variable}: its Bicep parameter`);
      assert.equal(row[2], `\`${setting}\``, `${variable}: its app setting`);
      const codeDefault = CODE_DEFAULTS[setting];
      if (codeDefault !== undefined)
        assert.ok(row[3]!.startsWith(`\`${codeDefault}\``), `${variable}: the docs give the code's default ${codeDefault}`);
    }
    assert.equal(CODE_DEFAULTS.MESSAGE_EXPIRY_DAYS, String(DEFAULT_MESSAGE_EXPIRY_DAYS));
  });

  test('docs/deployment.md says what azd provision does to settings set by hand, as api.bicep does it', () => {
    const section = doc.slice(doc.indexOf('### What `azd provision` does to app settings set by hand'));
    assert.ok(section.length > 0, 'the section exists');
    assert.match(section, /A setting set by hand that has no azd environment variable stays/);
    assert.match(section, /written\s+only when the variable is set/);
    assert.match(section, /The connection settings are always the template's/);
    for (const name of settingGroup(api, 'connectionSettings').keys())
      assert.ok(namedIn(section, name), `the section names ${name}`);
  });
});

describe('parameters of main.bicep', () => {
  test('every one is reachable with azd env set, or named in the docs as not from azd', () => {
    const params = declarations(main).filter((d) => d.kind === 'param');
    for (const param of params) {
      if (NOT_FROM_AZD.includes(param.name)) {
        assert.ok(!mapped[param.name], `${param.name} is not mapped`);
        assert.ok(doc.includes(`\`${param.name}\``), `docs/deployment.md names ${param.name}`);
        continue;
      }
      assert.ok(mapped[param.name], `main.parameters.json maps ${param.name} to an azd environment variable`);
    }
    for (const name of Object.keys(mapped))
      assert.ok(
        params.some((p) => p.name === name),
        `main.bicep declares ${name}`,
      );
  });

  test('each mapped one is in the docs table, with the default of the template', () => {
    for (const [name, { value }] of Object.entries(mapped)) {
      const { variable, defaultValue } = azdVariable(value);
      if (variable === 'AZURE_ENV_NAME' || variable === 'AZURE_LOCATION') continue; // azd's own
      const param = find(main, 'param', name)!;
      const bicepDefault = literal(param.value);
      // An unmapped default (`${NAME}`) is an empty string; the Bicep default must be empty too.
      const expected = defaultValue ?? '';
      const actual =
        bicepDefault === undefined
          ? undefined
          : typeof bicepDefault === 'object'
            ? JSON.stringify(bicepDefault)
            : String(bicepDefault);
      assert.equal(actual, expected, `${name}: Bicep default and main.parameters.json's agree`);
      const row = docRow(variable);
      assert.ok(row, `docs/deployment.md's parameters table has a row for ${variable}`);
      assert.equal(row[1]!.replace(/ \(.*\)$/, ''), `\`${name}\``, `${variable} is ${name}`);
      if (expected !== '') assert.ok(row[3]!.startsWith(`\`${expected}\``), `${variable}: the docs give the default ${expected}`);
    }
  });
});
