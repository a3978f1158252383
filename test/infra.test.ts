/**
 * Deployment (infra/, azure.yaml) against the code's contracts (shared/names.ts, shared/settings.ts): what the
 * templates create, set and grant. The Bicep files are read with tree-sitter-bicep, so these checks run on every
 * machine in a second, with or without the Bicep CLI. Syntax, types and the Azure Verified Modules' parameters are
 * the compiler's job: test/bicepCompile.test.ts runs `bicep build` and `bicep lint`. What only Azure can confirm is
 * listed in docs/deployment.md under "Checking a deployment before it runs".
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { CONTAINERS, QUEUES, STORAGE_CONNECTION, TABLES } from '../shared/names';
import { APP_SETTINGS, DEFAULT_REFRESH_SCHEDULE } from '../shared/settings';
import {
  callArguments,
  callee,
  declarations,
  descendants,
  find,
  listBicepFiles,
  literal,
  objectProperties,
  property,
  readBicep,
  resolveVariable,
  resources,
  stringValue,
  type BicepFile,
  type ResourceDeclaration,
} from './support/bicep';
import { readSimpleYaml } from './support/azdProject';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const infra = join(repo, 'infra');

/** Built-in role definition IDs, as published in "Azure built-in roles" (the same in every tenant). */
const BUILT_IN_ROLES: Readonly<Record<string, string>> = {
  Owner: '8e3af657-a8ff-443c-a75c-2fe8c4bcb635',
  Contributor: 'b24988ac-6180-42a0-ab88-20f7382dd24c',
  'Storage Blob Data Owner': 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b',
  'Storage Blob Data Contributor': 'ba92f5b4-2d11-453d-a403-e96b0029c9fe',
  'Storage Queue Data Contributor': '974c5e8b-45b9-4653-ba55-5f855dd0fb88',
  'Storage Queue Data Message Sender': 'c6a89b2d-59bc-44d0-9896-0f6e12d7b80a',
  'Storage Table Data Contributor': '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3',
  'Key Vault Administrator': '00482a5a-887f-4fb3-b363-3b7fe8e74483',
  'Key Vault Secrets Officer': 'b86a8fe4-44ce-4948-aee5-eccb2c155cd7',
  'Key Vault Secrets User': '4633458b-17de-408a-b874-0445c86b69e6',
  'Monitoring Metrics Publisher': '3913510d-42f4-4e42-8a64-420c390055eb',
};

/** Roles that grant control of resources or of access; the app and the developer get data roles only. */
const BROAD_ROLES = new Set(['Owner', 'Contributor', 'Key Vault Administrator']);

/** The resource type behind each scope name used in infra/roles.json. */
const SCOPE_TYPES: Readonly<Record<string, string>> = {
  storageAccount: 'Microsoft.Storage/storageAccounts',
  keyVault: 'Microsoft.KeyVault/vaults',
  applicationInsights: 'Microsoft.Insights/components',
  mimeContainer: 'Microsoft.Storage/storageAccounts/blobServices/containers',
  outboxQueue: 'Microsoft.Storage/storageAccounts/queueServices/queues',
};

/** Set by the platform or needed by it, not read by our code. */
const PLATFORM_SETTINGS = new Set([
  'APPLICATIONINSIGHTS_AUTHENTICATION_STRING',
  // App Service Authentication: the managed identity that signs in to the admin sign-in's app registration.
  'OVERRIDE_USE_MI_FIC_ASSERTION_CLIENTID',
]);

/** Flex Consumption refuses these: the runtime and the package location come from functionAppConfig. */
const FLEX_FORBIDDEN_SETTINGS = [
  'FUNCTIONS_WORKER_RUNTIME',
  'FUNCTIONS_EXTENSION_VERSION',
  'WEBSITE_RUN_FROM_PACKAGE',
  'WEBSITE_NODE_DEFAULT_VERSION',
  'WEBSITE_CONTENTAZUREFILECONNECTIONSTRING',
  'WEBSITE_CONTENTSHARE',
];

interface RoleEntry {
  role: string;
  id: string;
  scope: string;
  reason: string;
}

interface RolesFile {
  appIdentity: RoleEntry[];
  developer: RoleEntry[];
  relay: RoleEntry[];
}

let files: Map<string, BicepFile>;

function bicep(path: string): BicepFile {
  const file = files.get(path);
  assert.ok(file, `${path} exists`);
  return file;
}

function resource(file: BicepFile, name: string): ResourceDeclaration {
  const found = resources(file).find((r) => r.name === name);
  assert.ok(found, `${file.path}: resource or module ${name} is declared`);
  return found;
}

function text(node: { text: string } | undefined): string | undefined {
  return node?.text.replace(/\s+/g, ' ');
}

function readJson<T>(path: string): T {
  return JSON.parse(readFileSync(join(repo, path), 'utf8')) as T;
}

/** The app settings object literals that make up the function app's appsettings config. */
function appSettingsOf(api: BicepFile): Map<string, string> {
  const config = resources(api).find(
    (r) => r.target === 'Microsoft.Web/sites/config' && stringValue(property(r.body, 'name')) === 'appsettings',
  );
  assert.ok(config, `${api.path}: declares the appsettings config of the function app`);
  const value = property(config.body, 'properties');
  const objects =
    value?.type === 'object' ? [value] : callee(value) === 'union' ? callArguments(value).filter((a) => a.type === 'object') : [];
  assert.ok(objects.length > 0, `${api.path}: the app settings are an object literal (or a union with one)`);
  const settings = new Map<string, string>();
  for (const object of objects) for (const [key, node] of objectProperties(object)) settings.set(key, text(node) ?? '');
  return settings;
}

function sourceFiles(dir: string): string[] {
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

before(async () => {
  files = new Map();
  for (const file of listBicepFiles(infra)) {
    const parsed = await readBicep(file, repo);
    files.set(parsed.path, parsed);
  }
});

describe('azure.yaml', () => {
  const yaml = readSimpleYaml(readFileSync(join(repo, 'azure.yaml'), 'utf8'));
  const services = yaml.services as Record<string, Record<string, unknown>>;

  test('declares the api service: TypeScript on Azure Functions, built from the repository root', () => {
    assert.deepEqual(Object.keys(services), ['api']);
    assert.equal(services.api?.language, 'ts');
    assert.equal(services.api?.host, 'function');
    assert.equal(services.api?.project, '.');
  });

  test("the function app's azd-service-name tag matches the service in azure.yaml", () => {
    const main = bicep('infra/main.bicep');
    const api = bicep('infra/app/api.bicep');
    const apiModule = resource(main, 'api');
    assert.equal(apiModule.target, './app/api.bicep');
    const serviceName = literal(resolveVariable(main, property(apiModule.body, 'params.serviceName')));
    assert.equal(serviceName, 'api');
    assert.ok(services[serviceName], `azure.yaml has a service named ${serviceName}`);

    const site = resources(api).find((r) => r.target.startsWith('br/public:avm/res/web/site:'));
    assert.ok(site, 'api.bicep creates the function app with the AVM web/site module');
    const tags = property(site.body, 'params.tags');
    const tagObjects = tags?.type === 'object' ? [tags] : callArguments(tags).filter((a) => a.type === 'object');
    const serviceTag = tagObjects.map((o) => objectProperties(o).get('azd-service-name')).find(Boolean);
    assert.equal(serviceTag?.text, 'serviceName', 'the tag is the serviceName parameter');

    const tagged = [...files.values()].flatMap((f) =>
      descendants(f.root, 'object_property')
        .filter((p) => stringValue(p.namedChildren[0] ?? undefined) === 'azd-service-name')
        .map(() => f.path),
    );
    assert.deepEqual(tagged, ['infra/app/api.bicep'], 'only the function app carries azd-service-name');
  });

  test('runs the post-provision hook in sh and pwsh, interactively so that its output stays on screen', () => {
    const hooks = yaml.hooks as Record<string, Record<string, Record<string, unknown>>>;
    const postprovision = hooks.postprovision!;
    assert.equal(postprovision.posix?.shell, 'sh');
    assert.equal(postprovision.windows?.shell, 'pwsh');
    for (const platform of ['posix', 'windows']) {
      const run = String(postprovision[platform]?.run);
      assert.ok(existsSync(join(repo, run)), `${run} exists`);
      assert.equal(postprovision[platform]?.interactive, true);
    }
  });
});

describe('main.bicep', () => {
  test('targets the subscription and creates a resource group tagged azd-env-name', () => {
    const main = bicep('infra/main.bicep');
    assert.match(main.source, /^targetScope = 'subscription'$/m);
    const rg = resources(main).find((r) => r.target === 'Microsoft.Resources/resourceGroups');
    assert.ok(rg, 'declares the resource group');
    assert.equal(text(property(rg.body, 'tags')), 'tags');
    assert.deepEqual(literal(find(main, 'var', 'tags')?.value), { 'azd-env-name': { expression: 'environmentName' } });
    for (const r of resources(main).filter((m) => m.kind === 'module')) {
      assert.equal(text(property(r.body, 'scope')), 'rg', `module ${r.name} deploys into the resource group`);
    }
  });

  test('names resources from abbreviations.json and a resource token', () => {
    const main = bicep('infra/main.bicep');
    const abbreviations = readJson<Record<string, string>>('infra/abbreviations.json');
    assert.equal(text(find(main, 'var', 'abbrs')?.value), "loadJsonContent('./abbreviations.json')");
    assert.equal(
      text(find(main, 'var', 'resourceToken')?.value),
      'toLower(uniqueString(subscription().id, environmentName, location))',
    );
    const used = [...main.source.matchAll(/\babbrs\.(\w+)/g)].map((m) => m[1]!);
    assert.ok(used.length >= 7, 'abbreviations name the resources');
    for (const key of used) assert.ok(key in abbreviations, `abbreviations.json has ${key}`);
  });

  test('local modules receive exactly the parameters they declare', async () => {
    const main = bicep('infra/main.bicep');
    for (const module of resources(main).filter((r) => r.kind === 'module' && r.target.startsWith('./'))) {
      const target = bicep(join('infra', module.target).split('\\').join('/'));
      const declared = declarations(target).filter((d) => d.kind === 'param');
      const passed = [...objectProperties(property(module.body, 'params')).keys()];
      for (const name of passed)
        assert.ok(
          declared.some((d) => d.name === name),
          `${target.path} declares param ${name} (passed by main.bicep)`,
        );
      for (const param of declared.filter((d) => d.value === undefined)) {
        assert.ok(passed.includes(param.name), `main.bicep passes the required param ${param.name} to ${target.path}`);
      }
    }
  });

  test('registry modules are Azure Verified Modules pinned to a version', () => {
    const registry = [...files.values()].flatMap((f) =>
      resources(f).filter((r) => r.kind === 'module' && !r.target.startsWith('./')),
    );
    assert.ok(registry.length >= 5);
    for (const module of registry) assert.match(module.target, /^br\/public:avm\/res\/[a-z-]+\/[a-z-]+:\d+\.\d+\.\d+$/);
  });

  test('hosts the app on a Flex Consumption (FC1) plan with Node.js 22 and a user-assigned identity', () => {
    const main = bicep('infra/main.bicep');
    const api = bicep('infra/app/api.bicep');
    const plan = resource(main, 'appServicePlan');
    assert.match(plan.target, /^br\/public:avm\/res\/web\/serverfarm:/);
    assert.equal(literal(property(plan.body, 'params.skuName')), 'FC1', 'the module sets the tier FlexConsumption for FC1');
    assert.equal(literal(property(plan.body, 'params.reserved')), true);

    const apiModule = resource(main, 'api');
    assert.equal(literal(property(apiModule.body, 'params.runtimeName')), 'node');
    assert.equal(literal(property(apiModule.body, 'params.runtimeVersion')), '22');
    assert.equal(text(property(apiModule.body, 'params.identityId')), 'apiUserAssignedIdentity.outputs.resourceId');
    assert.equal(text(property(apiModule.body, 'params.identityClientId')), 'apiUserAssignedIdentity.outputs.clientId');

    const site = resources(api).find((r) => r.target.startsWith('br/public:avm/res/web/site:'))!;
    assert.equal(literal(property(site.body, 'params.kind')), 'functionapp,linux');
    assert.equal(literal(property(site.body, 'params.managedIdentities.systemAssigned')), false);
    assert.deepEqual(literal(property(site.body, 'params.managedIdentities.userAssignedResourceIds')), [
      { expression: 'identityId' },
    ]);
    assert.equal(text(property(site.body, 'params.functionAppConfig.runtime.name')), 'runtimeName');
    assert.equal(text(property(site.body, 'params.functionAppConfig.runtime.version')), 'runtimeVersion');
    const deployment = property(site.body, 'params.functionAppConfig.deployment.storage');
    assert.equal(literal(property(deployment, 'type')), 'blobContainer');
    assert.deepEqual(literal(property(deployment, 'authentication')), {
      type: 'UserAssignedIdentity',
      userAssignedIdentityResourceId: { expression: 'identityId' },
    });
    assert.match(text(property(deployment, 'value')) ?? '', /deploymentStorageContainerName/);
  });
});

describe('app settings', () => {
  test('every setting the code requires in Azure is set on the function app', () => {
    const settings = appSettingsOf(bicep('infra/app/api.bicep'));
    const required = APP_SETTINGS.filter((s) => s.required !== 'optional').map((s) => s.name);
    const missing = required.filter((name) => !settings.has(name));
    assert.deepEqual(missing, [], `not set in infra/app/api.bicep: ${missing.join(', ')}`);
  });

  test('every setting in Bicep is one the code documents (or one the platform reads)', () => {
    const settings = appSettingsOf(bicep('infra/app/api.bicep'));
    const known = new Set([...APP_SETTINGS.map((s) => s.name), ...PLATFORM_SETTINGS]);
    const unknown = [...settings.keys()].filter((name) => !known.has(name));
    assert.deepEqual(unknown, [], `set in Bicep but not in shared/settings.ts: ${unknown.join(', ')}`);
    for (const name of FLEX_FORBIDDEN_SETTINGS) assert.ok(!settings.has(name), `${name} is not allowed on Flex Consumption`);
    assert.ok(!settings.has('AzureWebJobsStorage'), 'host storage uses the identity, not a connection string');
  });

  test('storage connections are identity-based with the user-assigned identity', () => {
    const settings = appSettingsOf(bicep('infra/app/api.bicep'));
    assert.equal(STORAGE_CONNECTION, 'MailStorage');
    for (const connection of [STORAGE_CONNECTION, 'AzureWebJobsStorage']) {
      assert.equal(settings.get(`${connection}__credential`), "'managedidentity'", `${connection}__credential`);
      assert.equal(settings.get(`${connection}__clientId`), 'identityClientId', `${connection}__clientId`);
    }
    assert.equal(settings.get('AzureWebJobsStorage__accountName'), 'stg.name');
    for (const service of ['queue', 'table', 'blob']) {
      assert.equal(settings.get(`${STORAGE_CONNECTION}__${service}ServiceUri`), `stg.properties.primaryEndpoints.${service}`);
    }
    assert.equal(settings.get('AZURE_CLIENT_ID'), 'identityClientId');
  });

  test('the other settings come from the intended sources', () => {
    const api = bicep('infra/app/api.bicep');
    const main = bicep('infra/main.bicep');
    const settings = appSettingsOf(api);
    assert.equal(settings.get('MAIL_ACCOUNTS'), 'string(mailAccounts)');
    assert.equal(settings.get('KEY_VAULT_URL'), 'keyVaultUri');
    assert.equal(settings.get('ALERT_RECIPIENTS'), 'alertRecipients');
    assert.equal(settings.get('REFRESH_SCHEDULE'), '!empty(refreshSchedule) ? refreshSchedule : defaultRefreshSchedule');
    assert.equal(literal(find(api, 'var', 'defaultRefreshSchedule')?.value), DEFAULT_REFRESH_SCHEDULE);
    assert.equal(settings.get('PUBLIC_BASE_URL'), 'effectiveBaseUrl');
    assert.equal(
      text(find(api, 'var', 'effectiveBaseUrl')?.value),
      "!empty(givenBaseUrl) ? givenBaseUrl : 'https://${api.outputs.defaultHostname}'",
    );
    assert.equal(
      text(find(api, 'var', 'givenBaseUrl')?.value),
      "endsWith(publicBaseUrl, '/') ? take(publicBaseUrl, length(publicBaseUrl) - 1) : publicBaseUrl",
      'a trailing slash in publicBaseUrl is dropped, so the redirect URI has no //',
    );
    assert.equal(settings.get('APPLICATIONINSIGHTS_CONNECTION_STRING'), 'applicationInsights.properties.ConnectionString');
    assert.equal(settings.get('APPLICATIONINSIGHTS_AUTHENTICATION_STRING'), "'ClientId=${identityClientId};Authorization=AAD'");

    const apiModule = resource(main, 'api');
    assert.equal(text(property(apiModule.body, 'params.keyVaultUri')), 'keyVault.outputs.uri');
    for (const name of ['mailAccounts', 'alertRecipients', 'refreshSchedule', 'publicBaseUrl']) {
      assert.equal(text(property(apiModule.body, `params.${name}`)), name, `main.bicep passes its ${name} parameter`);
    }
    assert.equal(find(main, 'param', 'mailAccounts')?.type, 'array');
    assert.deepEqual(literal(find(main, 'param', 'mailAccounts')?.value), []);
  });

  test('the code reads only settings declared in shared/settings.ts, and every %binding% setting is set', () => {
    const declared = new Set(APP_SETTINGS.map((s) => s.name));
    const settings = appSettingsOf(bicep('infra/app/api.bicep'));
    const problems: string[] = [];
    for (const file of [...sourceFiles('functions'), ...sourceFiles('shared')]) {
      const source = readFileSync(file, 'utf8');
      const where = file.slice(repo.length + 1);
      const read = [
        ...source.matchAll(/process\.env\.([A-Za-z_][\w]*)/g),
        ...source.matchAll(/process\.env\[\s*['"`]([^'"`]+)['"`]\s*\]/g),
        ...source.matchAll(/readSetting\(\s*[\w.]+\s*,\s*['"`]([^'"`]+)['"`]/g),
      ].map((m) => m[1]!.replace(/^\$\{\w+\}(?=__)/, STORAGE_CONNECTION)); // `${connection}__clientId`: the one connection, checked below
      for (const name of read)
        if (!declared.has(name) && name !== 'NODE_ENV') problems.push(`${where} reads ${name}, not in APP_SETTINGS`);
      for (const m of source.matchAll(/['"`]%([A-Za-z_][\w]*)%['"`]/g)) {
        if (!settings.has(m[1]!))
          problems.push(`${where} binds %${m[1]}%, which Bicep does not set (the function would fail to load)`);
      }
      for (const m of source.matchAll(/\bconnection\s*:\s*['"`]([^'"`]+)['"`]/g)) {
        if (m[1] !== STORAGE_CONNECTION && m[1] !== 'AzureWebJobsStorage')
          problems.push(`${where} uses connection ${m[1]}, not ${STORAGE_CONNECTION}`);
      }
    }
    assert.deepEqual(problems, []);
  });
});

describe('storage', () => {
  function storageLists(): { queues: unknown; tables: unknown; containers: unknown; module: ResourceDeclaration } {
    const main = bicep('infra/main.bicep');
    const module = resource(main, 'storage');
    const list = (name: string): unknown => literal(resolveVariable(main, property(module.body, `params.${name}`)));
    return { queues: list('queueNames'), tables: list('tableNames'), containers: list('blobContainerNames'), module };
  }

  test('every queue, table and blob container the code uses is created, and nothing else', () => {
    const lists = storageLists();
    assert.deepEqual(new Set(lists.queues as string[]), new Set(Object.values(QUEUES)));
    assert.deepEqual(new Set(lists.tables as string[]), new Set(Object.values(TABLES)));
    assert.deepEqual(new Set(lists.containers as string[]), new Set(Object.values(CONTAINERS)));
    assert.equal(text(property(lists.module.body, 'params.deploymentContainerName')), 'deploymentStorageContainerName');
  });

  test('names follow the Azure Storage naming rules and the poison-queue convention', () => {
    for (const name of Object.values(QUEUES)) assert.match(name, /^(?!.*--)[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$/, `queue ${name}`);
    for (const name of Object.values(CONTAINERS))
      assert.match(name, /^(?!.*--)[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$/, `container ${name}`);
    for (const name of Object.values(TABLES)) assert.match(name, /^[A-Za-z][A-Za-z0-9]{2,62}$/, `table ${name}`);
    // The Functions queue trigger moves a message that fails maxDequeueCount times to <queue>-poison.
    assert.equal(QUEUES.poison, `${QUEUES.outbox}-poison`);
  });

  test('storage.bicep creates the queues, tables and containers it is given', () => {
    const storage = bicep('infra/app/storage.bicep');
    const account = resource(storage, 'storageAccount');
    assert.match(account.target, /^br\/public:avm\/res\/storage\/storage-account:/);
    for (const [path, source] of [
      ['params.blobServices.containers', 'concat([deploymentContainerName], blobContainerNames)'],
      ['params.queueServices.queues', 'queueNames'],
      ['params.tableServices.tables', 'tableNames'],
    ] as const) {
      const loop = property(account.body, path);
      assert.equal(loop?.type, 'for_statement', `${path} is a loop`);
      const variable = loop?.namedChildren.find((c) => c?.type === 'identifier')?.text;
      assert.match(
        text(loop) ?? '',
        new RegExp(`for \\w+ in ${source.replace(/[()[\]]/g, '\\$&')}:`),
        `${path} loops over ${source}`,
      );
      assert.match(text(loop) ?? '', new RegExp(`name: ${variable}\\b`), `${path}: one entry per name`);
    }
  });

  test('mail-mime blobs are deleted by a lifecycle rule after mailMimeRetentionDays (7 by default)', () => {
    const main = bicep('infra/main.bicep');
    const storage = bicep('infra/app/storage.bicep');
    assert.deepEqual(literal(property(resource(main, 'storage').body, 'params.expiringContainers')), [
      { name: { expression: 'mimeContainerName' }, days: { expression: 'mailMimeRetentionDays' } },
    ]);
    assert.equal(literal(find(main, 'var', 'mimeContainerName')?.value), CONTAINERS.mime);
    const retention = find(main, 'param', 'mailMimeRetentionDays');
    assert.equal(literal(retention?.value), 7);
    assert.ok(retention?.decorators.includes('@minValue(1)'), 'at least a day');
    const parameters = readJson<{ parameters: Record<string, { value: unknown }> }>('infra/main.parameters.json').parameters;
    assert.equal(parameters.mailMimeRetentionDays?.value, '${MAIL_MIME_RETENTION_DAYS=7}');

    const rules = property(resource(storage, 'storageAccount').body, 'params.managementPolicyRules');
    assert.equal(rules?.type, 'for_statement');
    const rule = text(rules) ?? '';
    assert.match(rule, /for container in expiringContainers:/);
    assert.match(rule, /prefixMatch: \[ '\$\{container\.name\}\/' \]/, 'the rule matches the container, by its name as prefix');
    assert.match(rule, /baseBlob: \{ delete: \{ daysAfterModificationGreaterThan: container\.days \} \}/);
    assert.match(rule, /enabled: true/);
  });

  test('the account allows no shared key, no public blob access and nothing below TLS 1.2', () => {
    const account = resource(bicep('infra/app/storage.bicep'), 'storageAccount');
    assert.equal(literal(property(account.body, 'params.allowSharedKeyAccess')), false);
    assert.equal(literal(property(account.body, 'params.allowBlobPublicAccess')), false);
    assert.equal(literal(property(account.body, 'params.minimumTlsVersion')), 'TLS1_2');
  });
});

describe('scale', () => {
  test('maximumInstanceCount stays within what Flex Consumption accepts (40 to 1000)', () => {
    const main = bicep('infra/main.bicep');
    const count = find(main, 'param', 'maximumInstanceCount');
    assert.ok(count?.decorators.includes('@minValue(40)'), `decorators: ${count?.decorators.join(' ')}`);
    assert.ok(count?.decorators.includes('@maxValue(1000)'), `decorators: ${count?.decorators.join(' ')}`);
    const memory = find(main, 'param', 'instanceMemoryMB');
    assert.match(memory?.decorators.join(' ') ?? '', /@allowed\(\[\s*512\s+2048\s+4096\s*\]\)/);
  });
});

describe('admin sign-in (App Service Authentication)', () => {
  const apiFile = () => bicep('infra/app/api.bicep');
  const auth = () =>
    resources(apiFile()).find(
      (r) => r.target === 'Microsoft.Web/sites/config' && stringValue(property(r.body, 'name')) === 'authsettingsV2',
    );

  test('is off unless adminSignInClientId is set', () => {
    const main = bicep('infra/main.bicep');
    assert.equal(literal(find(main, 'param', 'adminSignInClientId')?.value), '');
    assert.equal(text(property(resource(main, 'api').body, 'params.adminSignInClientId')), 'adminSignInClientId');
    assert.equal(text(find(apiFile(), 'var', 'adminSignIn')?.value), '!empty(adminSignInClientId)');
    assert.equal(auth()?.condition?.text, '(adminSignIn)');
    const parameters = readJson<{ parameters: Record<string, { value: unknown }> }>('infra/main.parameters.json').parameters;
    assert.equal(parameters.adminSignInClientId?.value, '${ADMIN_SIGN_IN_CLIENT_ID}');
  });

  test("requires sign-in everywhere but the callback, health and the producers' route, which exist in the code", () => {
    const config = auth();
    assert.ok(config, 'api.bicep declares authsettingsV2');
    assert.equal(literal(property(config.body, 'properties.globalValidation.requireAuthentication')), true);
    assert.equal(
      literal(property(config.body, 'properties.globalValidation.unauthenticatedClientAction')),
      'RedirectToLoginPage',
    );
    const excluded = literal(property(config.body, 'properties.globalValidation.excludedPaths')) as string[];
    assert.deepEqual(excluded, ['/api/oauth/callback', '/api/health', '/api/messages']);

    const sources = sourceFiles('functions').map((f) => readFileSync(f, 'utf8'));
    // app.http('name', { methods: [...], authLevel: '...', route: '...' or a constant, handler })
    const routes = sources.flatMap((source) =>
      [...source.matchAll(/app\.http\(\s*['"`](\w+)['"`]\s*,\s*\{([^}]*)\}/g)].map((m) => ({
        route: /\broute\s*:\s*['"`]([^'"`]+)['"`]/.exec(m[2]!)?.[1] ?? `(${m[1]})`,
        authLevel: /\bauthLevel\s*:\s*['"`](\w+)['"`]/.exec(m[2]!)?.[1] ?? 'function',
      })),
    );
    for (const path of excluded) {
      const found = routes.find((r) => `/api/${r.route}` === path);
      assert.ok(found, `${path} is a route of functions/ (routes: ${routes.map((r) => r.route).join(', ')})`);
    }
    // Everything else a person opens in a browser stays behind the sign-in (and its function key).
    for (const route of routes.filter((r) => !excluded.includes(`/api/${r.route}`))) {
      assert.notEqual(
        route.authLevel,
        'anonymous',
        `${route.route} is anonymous but not excluded: it would be behind the sign-in only`,
      );
    }
  });

  test("signs in with the app's managed identity as federated credential, no client secret", () => {
    const config = auth()!;
    const registration = property(config.body, 'properties.identityProviders.azureActiveDirectory.registration');
    assert.equal(text(property(registration, 'clientId')), 'adminSignInClientId');
    assert.equal(literal(property(registration, 'clientSecretSettingName')), 'OVERRIDE_USE_MI_FIC_ASSERTION_CLIENTID');
    assert.equal(
      text(find(apiFile(), 'var', 'adminSignInSettings')?.value),
      'adminSignIn ? { OVERRIDE_USE_MI_FIC_ASSERTION_CLIENTID: identityClientId } : {}',
    );
    const main = bicep('infra/main.bicep');
    assert.equal(text(find(main, 'output', 'ADMIN_SIGN_IN_REDIRECT_URI')?.value), 'api.outputs.ADMIN_SIGN_IN_REDIRECT_URI');
    assert.equal(
      text(find(apiFile(), 'output', 'ADMIN_SIGN_IN_REDIRECT_URI')?.value),
      "adminSignIn ? '${effectiveBaseUrl}/.auth/login/aad/callback' : ''",
    );
  });
});

describe('Key Vault and monitoring', () => {
  test('Key Vault: RBAC authorization, soft delete, purge protection a parameter that is off by default', () => {
    const vault = resource(bicep('infra/app/keyvault.bicep'), 'vault');
    assert.match(vault.target, /^br\/public:avm\/res\/key-vault\/vault:/);
    assert.equal(literal(property(vault.body, 'params.enableRbacAuthorization')), true);
    assert.equal(literal(property(vault.body, 'params.enableSoftDelete')), true);
    assert.equal(text(property(vault.body, 'params.enablePurgeProtection')), 'enablePurgeProtection');
    const main = bicep('infra/main.bicep');
    assert.equal(literal(find(main, 'param', 'keyVaultEnablePurgeProtection')?.value), false);
    assert.equal(
      text(property(resource(main, 'keyVault').body, 'params.enablePurgeProtection')),
      'keyVaultEnablePurgeProtection',
    );
    const parameters = readJson<{ parameters: Record<string, { value: unknown }> }>('infra/main.parameters.json').parameters;
    assert.equal(parameters.keyVaultEnablePurgeProtection?.value, '${KEY_VAULT_PURGE_PROTECTION=false}');
  });

  test('Log Analytics and Application Insights have local authentication off', () => {
    const monitoring = bicep('infra/app/monitoring.bicep');
    const workspace = resource(monitoring, 'logAnalytics');
    const insights = resource(monitoring, 'applicationInsights');
    assert.equal(workspace.target, 'Microsoft.OperationalInsights/workspaces');
    assert.equal(literal(property(workspace.body, 'properties.features.disableLocalAuth')), true);
    assert.equal(insights.target, 'Microsoft.Insights/components');
    assert.equal(literal(property(insights.body, 'properties.DisableLocalAuth')), true);
    assert.equal(text(property(insights.body, 'properties.WorkspaceResourceId')), 'logAnalytics.id');
  });
});

describe('role assignments', () => {
  const rolesFile = readJson<RolesFile>('infra/roles.json');

  /** What the code needs, derived from its contracts rather than from roles.json. */
  function requiredAppRoles(): { role: string; scope: string }[] {
    const needs: { role: string; scope: string }[] = [];
    const settingNames = new Set(APP_SETTINGS.map((s) => s.name));
    // Host storage (keys, leases, the Flex deployment package) and the attachments container.
    if (settingNames.has('AzureWebJobsStorage__accountName') || Object.keys(CONTAINERS).length > 0)
      needs.push({ role: 'Storage Blob Data Owner', scope: 'storageAccount' });
    // The queue trigger reads and deletes; the code also sends (deferrals, results): Contributor covers both.
    if (Object.keys(QUEUES).length > 0) needs.push({ role: 'Storage Queue Data Contributor', scope: 'storageAccount' });
    if (Object.keys(TABLES).length > 0) needs.push({ role: 'Storage Table Data Contributor', scope: 'storageAccount' });
    if (settingNames.has('KEY_VAULT_URL')) {
      const secretStore = readFileSync(join(repo, 'shared/storage/secretStore.ts'), 'utf8');
      needs.push({
        role: /\bset\s*\(/.test(secretStore) ? 'Key Vault Secrets Officer' : 'Key Vault Secrets User',
        scope: 'keyVault',
      });
    }
    if (settingNames.has('APPLICATIONINSIGHTS_CONNECTION_STRING'))
      needs.push({ role: 'Monitoring Metrics Publisher', scope: 'applicationInsights' });
    return needs;
  }

  test('roles.json uses the built-in role definition IDs and no broad role', () => {
    for (const entry of [...rolesFile.appIdentity, ...rolesFile.developer]) {
      assert.equal(entry.id, BUILT_IN_ROLES[entry.role], `${entry.role} has the built-in role definition ID`);
      assert.ok(!BROAD_ROLES.has(entry.role), `${entry.role} is too broad`);
      assert.ok(
        entry.scope in SCOPE_TYPES,
        `${entry.role}: scope ${entry.scope} is one of ${Object.keys(SCOPE_TYPES).join(', ')}`,
      );
      assert.ok(entry.reason.length > 10, `${entry.role}: says why`);
    }
  });

  test('every role the code needs is granted to the app identity at the right scope, and no other', () => {
    const needed = requiredAppRoles();
    const granted = rolesFile.appIdentity.map((e) => ({ role: e.role, scope: e.scope }));
    assert.deepEqual(new Set(granted.map((g) => JSON.stringify(g))), new Set(needed.map((n) => JSON.stringify(n))));
    assert.ok(
      rolesFile.appIdentity.some((e) => e.role === 'Key Vault Secrets Officer' && e.scope === 'keyVault'),
      'Key Vault Secrets Officer on the vault only',
    );
  });

  test('rbac.bicep assigns every entry of roles.json with the role definition ID and principal it names', () => {
    const rbac = bicep('infra/app/rbac.bicep');
    assert.equal(text(find(rbac, 'var', 'roles')?.value), "loadJsonContent('../roles.json')");
    const assignments = resources(rbac).filter((r) => r.target === 'Microsoft.Authorization/roleAssignments');
    const existing = new Map(
      resources(rbac)
        .filter((r) => r.existing)
        .map((r) => [r.name, r.target]),
    );

    for (const [list, principal] of [
      ['appIdentity', 'managedIdentityPrincipalId'],
      ['developer', 'developerPrincipalId'],
      ['relay', 'relayPrincipalId'],
    ] as const) {
      for (const scope of new Set(rolesFile[list].map((e) => e.scope))) {
        const assignment = assignments.find((a) => {
          const source = a.loop?.source;
          return (
            callee(source) === 'filter' &&
            callArguments(source)[0]?.text === `roles.${list}` &&
            descendants(source, 'string').some((s) => stringValue(s) === scope)
          );
        });
        assert.ok(assignment, `rbac.bicep loops over the ${list} roles with scope ${scope}`);
        const variable = assignment.loop!.variable;
        const scopeSymbol = text(property(assignment.body, 'scope'))!;
        assert.equal(existing.get(scopeSymbol), SCOPE_TYPES[scope], `${assignment.name} is scoped to the ${scope}`);
        assert.equal(text(property(assignment.body, 'properties.principalId')), principal);
        assert.equal(
          text(property(assignment.body, 'properties.roleDefinitionId')),
          `subscriptionResourceId('Microsoft.Authorization/roleDefinitions', ${variable}.id)`,
        );
        assert.equal(text(property(assignment.body, 'name')), `guid(${scopeSymbol}.id, ${principal}, ${variable}.id)`);
        if (list === 'appIdentity')
          assert.equal(literal(property(assignment.body, 'properties.principalType')), 'ServicePrincipal');
        else assert.equal(assignment.condition?.text, `(!empty(${principal}))`, `${list} roles are optional`);
      }
    }
  });

  test('the SMTP relay gets blob write on mail-mime and message send on mail-outbox, nothing else, only when named', () => {
    assert.deepEqual(
      rolesFile.relay.map((r) => `${r.role} @ ${r.scope}`),
      ['Storage Blob Data Contributor @ mimeContainer', 'Storage Queue Data Message Sender @ outboxQueue'],
    );
    const rbac = bicep('infra/app/rbac.bicep');
    const existing = (name: string) => resources(rbac).find((r) => r.existing && r.name === name);
    assert.equal(text(property(existing('mimeContainer')?.body, 'name')), 'mimeContainerName');
    assert.equal(text(property(existing('outboxQueue')?.body, 'name')), 'outboxQueueName');

    const main = bicep('infra/main.bicep');
    const params = property(resource(main, 'rbac').body, 'params');
    assert.equal(text(property(params, 'mimeContainerName')), 'mimeContainerName');
    assert.equal(text(property(params, 'outboxQueueName')), 'outboxQueueName');
    assert.equal(text(property(params, 'relayPrincipalId')), 'relayPrincipalId');
    assert.equal(literal(find(main, 'var', 'mimeContainerName')?.value), CONTAINERS.mime);
    assert.equal(literal(find(main, 'var', 'outboxQueueName')?.value), QUEUES.outbox);
    assert.equal(literal(find(main, 'param', 'relayPrincipalId')?.value), '', 'no relay unless asked');
  });

  test('main.bicep grants the app identity, and the deploying user only when asked', () => {
    const main = bicep('infra/main.bicep');
    const rbacModule = resource(main, 'rbac');
    assert.equal(
      text(property(rbacModule.body, 'params.managedIdentityPrincipalId')),
      'apiUserAssignedIdentity.outputs.principalId',
    );
    assert.equal(text(property(rbacModule.body, 'params.developerPrincipalId')), "grantDeveloperAccess ? principalId : ''");
  });
});

describe('outputs and parameters', () => {
  test('no output, parameter default or parameter file value is a secret', () => {
    const secretValue = /\blist\w*\(|connectionstring|instrumentationkey|password|primarykey|accesskey|secret\b/i;
    for (const file of files.values()) {
      assert.doesNotMatch(file.source, /\blist(Keys|Secrets|AccountSas|ServiceSas)\(/, `${file.path}: no key or SAS is read`);
      for (const decl of declarations(file)) {
        if (decl.kind === 'output') {
          assert.ok(!decl.decorators.some((d) => d.startsWith('@secure')), `${file.path}: output ${decl.name} is not secure`);
          assert.doesNotMatch(decl.name, /SECRET|PASSWORD|CONNECTION_STRING|ACCESS_KEY/i, `${file.path}: output ${decl.name}`);
          assert.doesNotMatch(decl.value?.text ?? '', secretValue, `${file.path}: output ${decl.name}`);
        }
        if (decl.kind === 'param' && decl.decorators.some((d) => d.startsWith('@secure'))) {
          assert.equal(decl.value, undefined, `${file.path}: secure param ${decl.name} has no default`);
        }
      }
    }
    const main = bicep('infra/main.bicep');
    assert.ok(
      !find(main, 'output', 'AZURE_CLIENT_ID'),
      'AZURE_CLIENT_ID would redirect DefaultAzureCredential in azd hooks and tools',
    );

    const parameters = readJson<{ parameters: Record<string, { value: unknown }> }>('infra/main.parameters.json').parameters;
    const params = declarations(main).filter((d) => d.kind === 'param');
    for (const [name, { value }] of Object.entries(parameters)) {
      assert.ok(
        params.some((p) => p.name === name),
        `main.bicep declares ${name}`,
      );
      assert.match(String(value), /^\$\{[A-Z][A-Z0-9_]*(=[^}]*)?\}$/, `${name} comes from the azd environment, never a literal`);
    }
    for (const param of params.filter((p) => p.value === undefined))
      assert.ok(param.name in parameters, `${param.name} is mapped in main.parameters.json`);
    assert.equal(parameters.mailAccounts?.value, '${MAIL_ACCOUNTS=[]}');
  });

  test('the outputs the post-provision hook reads exist', () => {
    const main = bicep('infra/main.bicep');
    const outputs = new Set(
      declarations(main)
        .filter((d) => d.kind === 'output')
        .map((d) => d.name),
    );
    const sh = readFileSync(join(infra, 'hooks/postprovision.sh'), 'utf8');
    const ps1 = readFileSync(join(infra, 'hooks/postprovision.ps1'), 'utf8');
    const read = new Set(
      [...sh.matchAll(/\$\{([A-Z][A-Z0-9_]*)/g), ...ps1.matchAll(/\$env:([A-Z][A-Z0-9_]*)/g)].map((m) => m[1]!),
    );
    assert.ok(read.size >= 6);
    for (const name of read) assert.ok(outputs.has(name), `main.bicep outputs ${name}`);
    assert.equal(
      text(find(main, 'output', 'OAUTH_REDIRECT_URI')?.value),
      "'${api.outputs.SERVICE_API_BASE_URL}/api/oauth/callback'",
    );
    assert.equal(
      text(find(main, 'output', 'MAIL_ACCOUNT_IDS')?.value),
      "join(filter(map(mailAccounts, account => string(account.?id ?? '')), id => !empty(id)), ',')",
      'an entry without id is left out for the app to report, instead of failing the deployment',
    );
  });

  test('the HTTP routes the hook prints exist in the code', () => {
    const sources = sourceFiles('functions').map((f) => readFileSync(f, 'utf8'));
    const routes = sources.flatMap((s) => [...s.matchAll(/\broute\s*:\s*['"`]([^'"`]+)['"`]/g)].map((m) => m[1]!));
    assert.ok(routes.includes('oauth/callback'), `routes: ${routes.join(', ')}`);
    assert.ok(
      routes.some((r) => /^accounts\/\{[^}]+\}\/authorize$/.test(r)),
      `routes: ${routes.join(', ')}`,
    );
    const hostJson = join(repo, 'host.json');
    if (existsSync(hostJson)) {
      const prefix = (JSON.parse(readFileSync(hostJson, 'utf8')) as { extensions?: { http?: { routePrefix?: string } } })
        .extensions?.http?.routePrefix;
      assert.ok(prefix === undefined || prefix === 'api', 'the hook assumes the /api route prefix');
    }
  });
});

describe('post-provision hook', () => {
  const env = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    SERVICE_API_NAME: 'func-api-abc123',
    SERVICE_API_BASE_URL: 'https://func-api-abc123.azurewebsites.net',
    OAUTH_REDIRECT_URI: 'https://func-api-abc123.azurewebsites.net/api/oauth/callback',
    MAIL_ACCOUNT_IDS: 'default,gmail-ops',
    AZURE_RESOURCE_GROUP: 'rg-dev',
    AZURE_KEY_VAULT_NAME: 'kv-abc123',
    AZURE_TENANT_ID: '00000000-0000-0000-0000-000000000001',
    API_IDENTITY_PRINCIPAL_ID: '00000000-0000-0000-0000-000000000002',
  };

  function checkOutput(output: string): void {
    assert.match(output, /https:\/\/func-api-abc123\.azurewebsites\.net\/api\/oauth\/callback/);
    assert.match(
      output,
      /default: https:\/\/func-api-abc123\.azurewebsites\.net\/api\/accounts\/default\/authorize\?code=<function key>/,
    );
    assert.match(
      output,
      /gmail-ops: https:\/\/func-api-abc123\.azurewebsites\.net\/api\/accounts\/gmail-ops\/authorize\?code=<function key>/,
    );
    assert.match(
      output,
      /az functionapp keys list --resource-group rg-dev --name func-api-abc123 --query functionKeys\.default --output tsv/,
    );
    assert.match(output, /az keyvault secret set --vault-name kv-abc123/);
    assert.match(output, /subject: +00000000-0000-0000-0000-000000000002/);
    assert.match(output, /api:\/\/AzureADTokenExchange/);
    assert.doesNotMatch(output, /Admin sign-in/, 'nothing about the admin sign-in while it is off');
  }

  test('sh: prints the redirect URI, the authorize URL of each account and how to get the function key', () => {
    const run = spawnSync('sh', [join(infra, 'hooks/postprovision.sh')], { env, encoding: 'utf8' });
    assert.equal(run.status, 0, run.stderr);
    checkOutput(run.stdout);
    const none = spawnSync('sh', [join(infra, 'hooks/postprovision.sh')], {
      env: { ...env, MAIL_ACCOUNT_IDS: '' },
      encoding: 'utf8',
    });
    assert.equal(none.status, 0, none.stderr);
    assert.match(none.stdout, /No accounts configured yet/);
    const signIn = spawnSync('sh', [join(infra, 'hooks/postprovision.sh')], {
      env: { ...env, ADMIN_SIGN_IN_REDIRECT_URI: `${env.SERVICE_API_BASE_URL}/.auth/login/aad/callback` },
      encoding: 'utf8',
    });
    assert.equal(signIn.status, 0, signIn.stderr);
    assert.match(
      signIn.stdout,
      /redirect URI \(Web\): +https:\/\/func-api-abc123\.azurewebsites\.net\/\.auth\/login\/aad\/callback/,
    );
    const outside = spawnSync('sh', [join(infra, 'hooks/postprovision.sh')], { env: { PATH: env.PATH }, encoding: 'utf8' });
    assert.notEqual(outside.status, 0, 'fails clearly outside azd');
  });

  test('pwsh: prints the same (skipped where PowerShell is not installed)', (t) => {
    const probe = spawnSync('pwsh', ['-NoProfile', '-Command', '$PSVersionTable.PSVersion.Major'], { encoding: 'utf8' });
    if (probe.error || probe.status !== 0) {
      t.skip('pwsh is not installed');
      return;
    }
    const run = spawnSync('pwsh', ['-NoProfile', '-File', join(infra, 'hooks/postprovision.ps1')], { env, encoding: 'utf8' });
    assert.equal(run.status, 0, run.stderr);
    checkOutput(run.stdout);
  });

  test('the sh and pwsh hooks print the same commands and URLs', () => {
    const sh = readFileSync(join(infra, 'hooks/postprovision.sh'), 'utf8');
    const ps1 = readFileSync(join(infra, 'hooks/postprovision.ps1'), 'utf8');
    for (const fragment of [
      '/api/oauth/callback',
      '/api/accounts/',
      '/authorize?code=<function key>',
      'az functionapp keys list',
      'functionKeys.default',
      'az keyvault secret set',
      '/api/status?code=<function key>',
      'api://AzureADTokenExchange',
      'ADMIN_SIGN_IN_REDIRECT_URI',
      'docs/provider-microsoft.md',
      'docs/provider-google.md',
    ]) {
      assert.ok(sh.includes(fragment), `postprovision.sh prints ${fragment}`);
      assert.ok(ps1.includes(fragment), `postprovision.ps1 prints ${fragment}`);
    }
  });
});
