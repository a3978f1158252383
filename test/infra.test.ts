/**
 * Deployment (infra/, azure.yaml) against the code's contracts (shared/names.ts, shared/settings.ts): what the
 * templates create, set and grant. The Bicep files are read with tree-sitter-bicep, so these checks run on every
 * machine in a second, with or without the Bicep CLI. Syntax, types and the Azure Verified Modules' parameters are
 * the compiler's job: test/bicepCompile.test.ts runs `bicep build` and `bicep lint`. What only Azure can confirm is
 * listed in docs/deployment.md under "Checking a deployment before it runs".
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { CONTAINERS, QUEUES, RELAY_CONTAINERS, STORAGE_CONNECTION, TABLES } from '../shared/names';
import { APP_SETTINGS, DEFAULT_REFRESH_SCHEDULE } from '../shared/settings';
import { DEFAULT_MESSAGE_EXPIRY_DAYS, policyFromSettings } from '../shared/delivery/policy';
import type { Node } from 'web-tree-sitter';
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
import { appSettingGroups, appSettingsOf, settingGroup } from './support/bicepAppSettings';
import { resourceGroupId, run, startArmStandIn, type ArmStandIn } from './support/armStandIn';
import { settingsReadIn, sourceFiles as sourceFilesUnder } from './support/settingsRead';

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
  relaySendersContainer: 'Microsoft.Storage/storageAccounts/blobServices/containers',
  relayActivityContainer: 'Microsoft.Storage/storageAccounts/blobServices/containers',
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

const sourceFiles = (dir: string): string[] => sourceFilesUnder(repo, dir);

/**
 * Evaluates the few Bicep expressions a test needs: literals, vars, params (given, or their defaults), ternaries,
 * arithmetic and comparisons, and the functions used in them, with ARM's rules (int of a non-integer fails).
 */
function evaluate(file: BicepFile, node: Node | null | undefined, params: Record<string, unknown>): unknown {
  const value = (n: Node | null | undefined) => evaluate(file, n, params);
  assert.ok(node, 'an expression to evaluate');
  switch (node.type) {
    case 'string': {
      const s = stringValue(node);
      assert.ok(s !== undefined, `no interpolation: ${node.text}`);
      return s;
    }
    case 'number':
      return Number(node.text);
    case 'identifier': {
      if (node.text in params) return params[node.text];
      const declaration = find(file, 'var', node.text) ?? find(file, 'param', node.text);
      assert.ok(declaration?.value, `${node.text} is a var or a param with a default`);
      return value(declaration.value);
    }
    case 'parenthesized_expression':
      return value(node.namedChildren[0]);
    case 'ternary_expression':
      return value(node.childForFieldName('condition'))
        ? value(node.childForFieldName('consequence'))
        : value(node.childForFieldName('alternative'));
    case 'unary_expression':
      assert.equal(node.children[0]?.text, '!');
      return !value(node.childForFieldName('argument'));
    case 'subscript_expression':
      return (value(node.childForFieldName('object')) as unknown[])[Number(value(node.childForFieldName('index')))];
    case 'binary_expression': {
      const left = value(node.childForFieldName('left')) as number;
      const right = value(node.childForFieldName('right')) as number;
      const operator = node.children.find((c) => c && !c.isNamed)?.text;
      const operations: Record<string, () => unknown> = {
        '+': () => left + right,
        '-': () => left - right,
        '>': () => left > right,
        '<': () => left < right,
        '&&': () => Boolean(left) && Boolean(right),
        '||': () => Boolean(left) || Boolean(right),
        '==': () => left === right,
      };
      assert.ok(operator && operator in operations, `operator ${operator}`);
      return operations[operator]!();
    }
    case 'call_expression': {
      const args = callArguments(node).map(value);
      const functions: Record<string, (...a: never[]) => unknown> = {
        empty: (x: string | unknown[]) => x.length === 0,
        length: (x: string | unknown[]) => x.length,
        trim: (x: string) => x.trim(),
        split: (x: string, separator: string) => x.split(separator),
        first: (x: unknown[]) => x[0],
        last: (x: unknown[]) => x[x.length - 1],
        replace: (x: string, from: string, to: string) => x.split(from).join(to),
        int: (x: string | number) => {
          assert.match(String(x), /^-?\d+$/, `int(${JSON.stringify(x)}) fails the deployment`);
          return Number(x);
        },
      };
      const name = callee(node)!;
      assert.ok(name in functions, `function ${name}`);
      return (functions[name] as (...a: unknown[]) => unknown)(...args);
    }
    default:
      assert.fail(`cannot evaluate ${node.type}: ${node.text}`);
  }
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
    assert.ok(registry.length >= 3);
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

  test('storage connections are identity-based with the user-assigned identity, and always written by Bicep', () => {
    const settings = settingGroup(bicep('infra/app/api.bicep'), 'connectionSettings');
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
    assert.equal(settings.get('KEY_VAULT_URL'), 'keyVaultUri');
    assert.equal(settings.get('APPLICATIONINSIGHTS_CONNECTION_STRING'), 'applicationInsights.properties.ConnectionString');
    assert.equal(settings.get('APPLICATIONINSIGHTS_AUTHENTICATION_STRING'), "'ClientId=${identityClientId};Authorization=AAD'");
  });

  test('provisioning keeps the settings set by hand: current settings first, azd and the connections on top', () => {
    const api = bicep('infra/app/api.bicep');
    const order = appSettingGroups(api).map((g) => g.source);
    assert.deepEqual(order, [
      'firstDeploymentSettings',
      'currentAppSettings',
      'additionalAppSettings',
      'adminSignInSettings',
      'azdEnvironmentSettings',
      'connectionSettings',
    ]);
    assert.equal(
      text(find(api, 'var', 'currentAppSettings')?.value),
      "list('${site.id}/config/appsettings', '2024-11-01').properties",
      'the settings the app has before this deployment',
    );
  });

  test('the other settings come from the azd environment, each written only when its variable is set', () => {
    const api = bicep('infra/app/api.bicep');
    const main = bicep('infra/main.bicep');
    const fromAzd = settingGroup(api, 'azdEnvironmentSettings');
    assert.equal(fromAzd.get('MAIL_ACCOUNTS'), 'string(mailAccounts)');
    assert.equal(fromAzd.get('ALERT_RECIPIENTS'), 'alertRecipients');
    assert.equal(fromAzd.get('REFRESH_SCHEDULE'), 'refreshSchedule');
    assert.equal(fromAzd.get('PUBLIC_BASE_URL'), 'givenBaseUrl');
    assert.equal(fromAzd.get('MESSAGE_EXPIRY_DAYS'), 'messageExpiryDays');
    assert.equal(fromAzd.get('RESULT_EVENTS'), 'resultEvents');
    assert.equal(fromAzd.get('TEST_EMAIL_WAIT_SECONDS'), 'testEmailWaitSeconds');
    // Each is `empty(x) ? {} : { NAME: x }`: an empty variable leaves the app's value as it is.
    const union = find(api, 'var', 'azdEnvironmentSettings')?.value;
    for (const part of callArguments(union)) assert.match(text(part) ?? '', /^empty\((\w+)\) \? \{\} : \{ \w+: .*\b\1\b.* \}$/);

    const first = settingGroup(api, 'firstDeploymentSettings');
    assert.equal(first.get('MAIL_ACCOUNTS'), "'[]'");
    assert.equal(first.get('REFRESH_SCHEDULE'), 'defaultRefreshSchedule');
    assert.equal(literal(find(api, 'var', 'defaultRefreshSchedule')?.value), DEFAULT_REFRESH_SCHEDULE);
    assert.equal(first.get('PUBLIC_BASE_URL'), "'https://${api.outputs.defaultHostname}'");
    assert.equal(
      text(find(api, 'var', 'givenBaseUrl')?.value),
      "endsWith(publicBaseUrl, '/') ? take(publicBaseUrl, length(publicBaseUrl) - 1) : publicBaseUrl",
      'a trailing slash in publicBaseUrl is dropped, so the redirect URI has no //',
    );
    assert.equal(text(find(api, 'var', 'mergedBaseUrl')?.value), 'appSettingsValues.PUBLIC_BASE_URL');
    assert.equal(
      text(find(api, 'var', 'effectiveBaseUrl')?.value),
      "endsWith(mergedBaseUrl, '/') ? take(mergedBaseUrl, length(mergedBaseUrl) - 1) : mergedBaseUrl",
      'the outputs show the base URL the app uses, also when it was set by hand',
    );

    const apiModule = resource(main, 'api');
    assert.equal(text(property(apiModule.body, 'params.keyVaultUri')), 'keyVault.outputs.uri');
    for (const name of [
      'mailAccounts',
      'alertRecipients',
      'refreshSchedule',
      'publicBaseUrl',
      'messageExpiryDays',
      'resultEvents',
      'testEmailWaitSeconds',
    ]) {
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
      // `${connection}__clientId` counts as the one connection, which the check below holds to STORAGE_CONNECTION.
      for (const name of settingsReadIn(source))
        if (!declared.has(name)) problems.push(`${where} reads ${name}, not in APP_SETTINGS`);
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
    assert.deepEqual(
      new Set(lists.containers as string[]),
      new Set([...Object.values(CONTAINERS), ...Object.values(RELAY_CONTAINERS)]),
    );
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
    assert.equal(account.target, 'Microsoft.Storage/storageAccounts');
    for (const [name, parent, source] of [
      ['containers', 'blobService', 'concat([deploymentContainerName], blobContainerNames)'],
      ['queues', 'queueService', 'queueNames'],
      ['tables', 'tableService', 'tableNames'],
    ] as const) {
      const loop = resource(storage, name);
      assert.equal(text(loop.loop?.source), source, `${name} loops over ${source}`);
      assert.equal(text(property(loop.body, 'name')), loop.loop?.variable, `${name}: one per name`);
      assert.equal(text(property(loop.body, 'parent')), parent);
      assert.equal(text(property(resource(storage, parent).body, 'parent')), 'storageAccount');
    }
    assert.equal(literal(property(resource(storage, 'containers').body, 'properties.publicAccess')), 'None');
  });

  test('mail-mime blobs are deleted by a lifecycle rule a day after the message expiry (rounded up)', () => {
    const main = bicep('infra/main.bicep');
    const lifecycle = bicep('infra/app/storageLifecycle.bicep');
    const module = resource(main, 'storageLifecycle');
    assert.equal(module.target, './app/storageLifecycle.bicep');
    assert.equal(text(property(module.body, 'params.containerName')), 'mimeContainerName');
    assert.equal(literal(find(main, 'var', 'mimeContainerName')?.value), CONTAINERS.mime);
    // The expiry the app has after the app settings were written, whoever set it (azd or an administrator).
    assert.equal(text(property(module.body, 'params.messageExpiryDays')), 'api.outputs.MESSAGE_EXPIRY_DAYS');
    assert.equal(
      text(find(bicep('infra/app/api.bicep'), 'output', 'MESSAGE_EXPIRY_DAYS')?.value),
      "appSettingsValues.?MESSAGE_EXPIRY_DAYS ?? ''",
    );
    assert.equal(literal(find(lifecycle, 'param', 'defaultMessageExpiryDays')?.value), DEFAULT_MESSAGE_EXPIRY_DAYS);
    assert.ok(!find(main, 'param', 'mailMimeRetentionDays'), 'no separate retention to forget');

    const policy = resource(lifecycle, 'lifecycle');
    assert.equal(policy.target, 'Microsoft.Storage/storageAccounts/managementPolicies');
    assert.equal(stringValue(property(policy.body, 'name')), 'default');
    const rule = text(property(policy.body, 'properties.policy.rules')) ?? '';
    assert.match(rule, /prefixMatch: \[ '\$\{containerName\}\/' \]/, 'the rule matches the container, by its name as prefix');
    assert.match(rule, /baseBlob: \{ delete: \{ daysAfterModificationGreaterThan: expiryWholeDays \+ 1 \} \}/);
    assert.match(rule, /enabled: true/);

    // The Bicep arithmetic, evaluated: a blob outlives the longest wait the app allows, by one day and less than two.
    const day = 24 * 3600 * 1000;
    for (const setting of ['', '7', '7.0', '7.5', '0.25', '.5', '14', ' 30 ', '365']) {
      const retention = Number(
        evaluate(lifecycle, find(lifecycle, 'output', 'retentionDays')?.value, { messageExpiryDays: setting }),
      );
      const expiryDays = policyFromSettings({ MESSAGE_EXPIRY_DAYS: setting }).maxAgeMs / day;
      assert.ok(
        retention >= expiryDays + 1 && retention < expiryDays + 2,
        `MESSAGE_EXPIRY_DAYS "${setting}": kept ${retention} days`,
      );
    }
    assert.equal(text(find(lifecycle, 'output', 'retentionDays')?.value), 'expiryWholeDays + 1');
  });

  test('the account allows no shared key, no public blob access and nothing below TLS 1.2', () => {
    const account = resource(bicep('infra/app/storage.bicep'), 'storageAccount');
    assert.equal(literal(property(account.body, 'properties.allowSharedKeyAccess')), false);
    assert.equal(literal(property(account.body, 'properties.allowBlobPublicAccess')), false);
    assert.equal(literal(property(account.body, 'properties.minimumTlsVersion')), 'TLS1_2');
    assert.equal(literal(property(account.body, 'properties.supportsHttpsTrafficOnly')), true);
  });

  test('writes and deletes of every storage service go to Log Analytics, reads only when asked', () => {
    const storage = bicep('infra/app/storage.bicep');
    for (const [name, scope] of [
      ['blobDiagnostics', 'blobService'],
      ['queueDiagnostics', 'queueService'],
      ['tableDiagnostics', 'tableService'],
    ] as const) {
      const setting = resource(storage, name);
      assert.equal(text(property(setting.body, 'scope')), scope);
      assert.equal(text(property(setting.body, 'properties.logs')), 'serviceLogs');
      assert.equal(text(setting.condition), '(diagnostics)');
    }
    const logs = text(find(storage, 'var', 'serviceLogs')?.value) ?? '';
    assert.match(logs, /category: 'StorageWrite'/);
    assert.match(logs, /category: 'StorageDelete'/);
    assert.match(logs, /logReads \? \[ \{ category: 'StorageRead'/);
    const main = bicep('infra/main.bicep');
    assert.equal(text(property(resource(main, 'storage').body, 'params.logReads')), 'storageReadLogs');
    assert.equal(literal(find(main, 'param', 'storageReadLogs')?.value), false);
    assert.equal(
      text(find(main, 'var', 'logAnalyticsWorkspaceId')?.value),
      "diagnosticLogs ? monitoring.outputs.logAnalyticsWorkspaceId : ''",
    );
    for (const module of ['storage', 'keyVault', 'api'])
      assert.equal(
        text(property(resource(main, module).body, 'params.logAnalyticsWorkspaceId')),
        'logAnalyticsWorkspaceId',
        module,
      );
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
  test('Key Vault: RBAC authorization, soft delete, purge protection a parameter that is on by default', () => {
    const keyVault = bicep('infra/app/keyvault.bicep');
    const vault = resource(keyVault, 'vault');
    assert.equal(vault.target, 'Microsoft.KeyVault/vaults');
    assert.ok((vault.apiVersion ?? '') >= '2026-02-01', `API version ${vault.apiVersion}: older ones retire on 2027-02-27`);
    assert.equal(literal(property(vault.body, 'properties.enableRbacAuthorization')), true);
    assert.deepEqual(literal(property(vault.body, 'properties.accessPolicies')), []);
    assert.equal(literal(property(vault.body, 'properties.enableSoftDelete')), true);
    // The service refuses an explicit false: off is null.
    assert.equal(text(property(vault.body, 'properties.enablePurgeProtection')), 'enablePurgeProtection ? true : null');
    assert.equal(literal(find(keyVault, 'param', 'enablePurgeProtection')?.value), true);
    const main = bicep('infra/main.bicep');
    assert.equal(literal(find(main, 'param', 'keyVaultEnablePurgeProtection')?.value), true);
    assert.equal(
      text(property(resource(main, 'keyVault').body, 'params.enablePurgeProtection')),
      'keyVaultEnablePurgeProtection',
    );
    const parameters = readJson<{ parameters: Record<string, { value: unknown }> }>('infra/main.parameters.json').parameters;
    assert.equal(parameters.keyVaultEnablePurgeProtection?.value, '${KEY_VAULT_PURGE_PROTECTION=true}');
    // The audit log goes to Log Analytics under the name the Azure Verified Module gave it, so no second setting.
    const diagnostics = resource(keyVault, 'diagnostics');
    assert.equal(text(property(diagnostics.body, 'scope')), 'vault');
    assert.equal(text(property(diagnostics.body, 'name')), "'${name}-diagnosticSettings'");
    assert.deepEqual(literal(property(diagnostics.body, 'properties.logs')), [{ categoryGroup: 'allLogs', enabled: true }]);
    // Every other reference to a vault is at the same version.
    for (const file of files.values())
      for (const r of resources(file).filter((d) => d.target.startsWith('Microsoft.KeyVault/')))
        assert.ok((r.apiVersion ?? '') >= '2026-02-01', `${file.path}: ${r.name} at ${r.apiVersion}`);
  });

  test('the function app: no FTP, no basic publishing credentials unless asked, platform logs to Log Analytics', () => {
    const site = resources(bicep('infra/app/api.bicep')).find((r) => r.target.startsWith('br/public:avm/res/web/site:'))!;
    assert.equal(literal(property(site.body, 'params.siteConfig.ftpsState')), 'Disabled');
    assert.equal(literal(property(site.body, 'params.siteConfig.minTlsVersion')), '1.2');
    assert.equal(literal(property(site.body, 'params.siteConfig.scmMinTlsVersion')), '1.2');
    assert.deepEqual(literal(property(site.body, 'params.basicPublishingCredentialsPolicies')), [
      { name: 'ftp', allow: { expression: 'allowBasicPublishingCredentials' } },
      { name: 'scm', allow: { expression: 'allowBasicPublishingCredentials' } },
    ]);
    assert.match(text(property(site.body, 'params.diagnosticSettings')) ?? '', /workspaceResourceId: logAnalyticsWorkspaceId/);
    const main = bicep('infra/main.bicep');
    assert.equal(literal(find(main, 'param', 'allowBasicPublishingCredentials')?.value), false);
    assert.equal(literal(find(main, 'param', 'diagnosticLogs')?.value), true);
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

    // The relay's roles go to the principal named by relayPrincipalId, the identity the deployment created, or both.
    assert.equal(
      text(find(rbac, 'var', 'relayGrants')?.value),
      'flatten(map(relayGrantees, grantee => map(roles.relay, role => { grantee: grantee, role: role })))',
    );
    const grantees = text(find(rbac, 'var', 'relayGrantees')?.value) ?? '';
    assert.match(grantees, /empty\(relayPrincipalId\) \? \[\] : \[\{ key: relayPrincipalId, created: false \}\]/);
    assert.match(grantees, /empty\(relayIdentityName\) \? \[\] : \[\{ key: relayIdentityId, created: true \}\]/);
    for (const scope of new Set(rolesFile.relay.map((e) => e.scope))) {
      const assignment = assignments.find((a) => {
        const source = a.loop?.source;
        return (
          callee(source) === 'filter' &&
          callArguments(source)[0]?.text === 'relayGrants' &&
          descendants(source, 'string').some((s) => stringValue(s) === scope)
        );
      });
      assert.ok(assignment, `rbac.bicep loops over the relay grants with scope ${scope}`);
      const grant = assignment.loop!.variable;
      const scopeSymbol = text(property(assignment.body, 'scope'))!;
      assert.equal(existing.get(scopeSymbol), SCOPE_TYPES[scope], `${assignment.name} is scoped to the ${scope}`);
      assert.equal(
        text(property(assignment.body, 'properties.principalId')),
        `${grant}.grantee.created ? relayIdentityPrincipalId : relayPrincipalId`,
      );
      assert.equal(
        text(property(assignment.body, 'properties.roleDefinitionId')),
        `subscriptionResourceId('Microsoft.Authorization/roleDefinitions', ${grant}.role.id)`,
      );
      assert.equal(text(property(assignment.body, 'name')), `guid(${scopeSymbol}.id, ${grant}.grantee.key, ${grant}.role.id)`);
    }
  });

  test('the SMTP relay gets blob write on mail-mime, message send on mail-outbox, read on relay-senders and write on relay-activity, nothing else, only when named', () => {
    assert.deepEqual(
      rolesFile.relay.map((r) => `${r.role} @ ${r.scope}`),
      [
        'Storage Blob Data Contributor @ mimeContainer',
        'Storage Queue Data Message Sender @ outboxQueue',
        'Storage Blob Data Reader @ relaySendersContainer',
        'Storage Blob Data Contributor @ relayActivityContainer',
        'Monitoring Metrics Publisher @ applicationInsights',
      ],
    );
    const rbac = bicep('infra/app/rbac.bicep');
    const existing = (name: string) => resources(rbac).find((r) => r.existing && r.name === name);
    assert.equal(text(property(existing('mimeContainer')?.body, 'name')), 'mimeContainerName');
    assert.equal(text(property(existing('outboxQueue')?.body, 'name')), 'outboxQueueName');

    const main = bicep('infra/main.bicep');
    const params = property(resource(main, 'rbac').body, 'params');
    assert.equal(text(property(params, 'mimeContainerName')), 'mimeContainerName');
    assert.equal(text(property(params, 'outboxQueueName')), 'outboxQueueName');
    assert.equal(text(property(params, 'relaySendersContainerName')), 'relaySendersContainerName');
    assert.equal(text(property(params, 'relayActivityContainerName')), 'relayActivityContainerName');
    assert.equal(literal(find(main, 'var', 'relaySendersContainerName')?.value), RELAY_CONTAINERS.senders);
    assert.equal(literal(find(main, 'var', 'relayActivityContainerName')?.value), RELAY_CONTAINERS.activity);
    assert.equal(text(property(params, 'relayPrincipalId')), 'relayPrincipalId');
    assert.equal(literal(find(main, 'var', 'mimeContainerName')?.value), CONTAINERS.mime);
    assert.equal(literal(find(main, 'var', 'outboxQueueName')?.value), QUEUES.outbox);
    assert.equal(literal(find(main, 'param', 'relayPrincipalId')?.value), '', 'no relay unless asked');
    assert.equal(literal(find(main, 'param', 'createRelayIdentity')?.value), false, 'no relay identity unless asked');
    assert.equal(text(property(params, 'relayIdentityName')), "createRelayIdentity ? relayIdentityName : ''");
    assert.equal(
      text(property(params, 'relayIdentityPrincipalId')),
      "createRelayIdentity ? relayIdentity!.outputs.principalId : ''",
    );
    assert.equal(resource(main, 'relayIdentity').condition?.text, '(createRelayIdentity)');
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
  // The hook first removes role assignments the template no longer declares: against a stand-in `azd` and Resource
  // Manager here (test/roleAssignmentCleanup.test.ts tests that step on its own).
  let arm: ArmStandIn;
  let env: NodeJS.ProcessEnv & Record<string, string>;
  before(async () => {
    arm = await startArmStandIn();
    env = {
      PATH: arm.path,
      SERVICE_API_NAME: 'func-api-abc123',
      SERVICE_API_BASE_URL: 'https://func-api-abc123.azurewebsites.net',
      OAUTH_REDIRECT_URI: 'https://func-api-abc123.azurewebsites.net/api/oauth/callback',
      MAIL_ACCOUNT_IDS: 'default,gmail-ops',
      AZURE_RESOURCE_GROUP: 'rg-dev',
      AZURE_KEY_VAULT_NAME: 'kv-abc123',
      AZURE_TENANT_ID: '00000000-0000-0000-0000-000000000001',
      API_IDENTITY_PRINCIPAL_ID: '00000000-0000-0000-0000-000000000002',
      AZURE_RESOURCE_GROUP_ID: resourceGroupId('rg-dev'),
      AZURE_RESOURCE_MANAGER_ENDPOINT: arm.url,
      ROLE_ASSIGNMENT_NAMES: 'a0000000-0000-0000-0000-000000000001',
      MONITORING_WORKBOOK_ID: `${resourceGroupId('rg-dev')}/providers/Microsoft.Insights/workbooks/0000`,
    };
  });
  after(() => arm.close());

  function checkOutput(output: string): void {
    assert.match(output, /Role assignments: this deployment declares 1; none left over/);
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
    assert.match(output, /Monitoring: workbook "oauth-outbox" and alert rules in resource group rg-dev/);
    assert.doesNotMatch(output, /Admin sign-in/, 'nothing about the admin sign-in while it is off');
  }

  const hook = join(infra, 'hooks/postprovision.sh');

  test('sh: removes stale role assignments, prints the redirect URI, the authorize URLs and how to get the function key', async () => {
    const result = await run('sh', [hook], env);
    assert.equal(result.status, 0, result.stderr);
    checkOutput(result.stdout);
    const none = await run('sh', [hook], { ...env, MAIL_ACCOUNT_IDS: '' });
    assert.equal(none.status, 0, none.stderr);
    assert.match(none.stdout, /No accounts configured yet/);
    const signIn = await run('sh', [hook], {
      ...env,
      ADMIN_SIGN_IN_REDIRECT_URI: `${env.SERVICE_API_BASE_URL}/.auth/login/aad/callback`,
    });
    assert.equal(signIn.status, 0, signIn.stderr);
    assert.match(
      signIn.stdout,
      /redirect URI \(Web\): +https:\/\/func-api-abc123\.azurewebsites\.net\/\.auth\/login\/aad\/callback/,
    );
    const outside = await run('sh', [hook], { PATH: env.PATH });
    assert.notEqual(outside.status, 0, 'fails clearly outside azd');
    // When the role assignments cannot be checked, the hook fails, and with it azd provision.
    const unchecked = await run('sh', [hook], { ...env, ROLE_ASSIGNMENT_NAMES: '' });
    assert.notEqual(unchecked.status, 0);
    assert.match(unchecked.stderr, /ROLE_ASSIGNMENT_NAMES is not set/);
    assert.doesNotMatch(unchecked.stdout, /Register this redirect URI/);
  });

  test('pwsh: does the same (skipped where PowerShell is not installed)', async (t) => {
    const probe = spawnSync('pwsh', ['-NoProfile', '-Command', '$PSVersionTable.PSVersion.Major'], { encoding: 'utf8' });
    if (probe.error || probe.status !== 0) {
      t.skip('pwsh is not installed');
      return;
    }
    const script = join(infra, 'hooks/postprovision.ps1');
    const result = await run('pwsh', ['-NoProfile', '-File', script], env);
    assert.equal(result.status, 0, result.stderr);
    checkOutput(result.stdout);
    const unchecked = await run('pwsh', ['-NoProfile', '-File', script], { ...env, ROLE_ASSIGNMENT_NAMES: '' });
    assert.notEqual(unchecked.status, 0);
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
      'removeStaleRoleAssignments.mjs',
      'MONITORING_WORKBOOK_ID',
      'Monitoring: workbook',
    ]) {
      assert.ok(sh.includes(fragment), `postprovision.sh prints ${fragment}`);
      assert.ok(ps1.includes(fragment), `postprovision.ps1 prints ${fragment}`);
    }
  });
});
