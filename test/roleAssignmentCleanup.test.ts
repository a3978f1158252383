/**
 * Taking access away: a deployment never deletes the role assignments it stopped declaring, so the post-provision
 * hook removes them (infra/hooks/removeStaleRoleAssignments.mjs). Run here as azd runs it, with a stand-in `azd` on
 * PATH for the token and a loopback Resource Manager holding the assignments (test/support/armStandIn.ts). The
 * template's side, which assignments it declares and how it marks them as its own, is checked from the Bicep.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, test } from 'node:test';
import { callArguments, find, property, readBicep, resources, type BicepFile } from './support/bicep';
import {
  assignment,
  resourceGroupId,
  run,
  startArmStandIn,
  SUBSCRIPTION,
  type ArmStandIn,
  type RoleAssignmentRow,
} from './support/armStandIn';

const repo = join(import.meta.dirname, '..');
const script = join(repo, 'infra/hooks/removeStaleRoleAssignments.mjs');

interface RoleEntry {
  role: string;
  id: string;
  scope: string;
  reason: string;
}
const roles = JSON.parse(readFileSync(join(repo, 'infra/roles.json'), 'utf8')) as Record<
  'appIdentity' | 'developer' | 'relay' | 'retired',
  RoleEntry[]
>;

const RG = resourceGroupId('rg-dev');
const STORAGE = `${RG}/providers/Microsoft.Storage/storageAccounts/stabc`;
const VAULT = `${RG}/providers/Microsoft.KeyVault/vaults/kv-abc`;
const CONTAINER = `${STORAGE}/blobServices/default/containers/mail-mime`;
const QUEUE = `${STORAGE}/queueServices/default/queues/mail-outbox`;
const APP = '00000000-0000-0000-0000-00000000a001';
const DEVELOPER = '00000000-0000-0000-0000-00000000d001';
const RELAY = '00000000-0000-0000-0000-00000000e001';
const OTHER = '00000000-0000-0000-0000-00000000f001';

const entry = (list: 'appIdentity' | 'developer' | 'relay', scope: string, n = 0): RoleEntry =>
  roles[list].filter((e) => e.scope === scope)[n]!;

/** What an earlier deployment with developer access and a relay left, plus assignments that are not ours. */
function deployedBefore(): RoleAssignmentRow[] {
  const appStorage = entry('appIdentity', 'storageAccount');
  const devStorage = entry('developer', 'storageAccount');
  const devVault = entry('developer', 'keyVault');
  const relayBlob = entry('relay', 'mimeContainer');
  const relayQueue = entry('relay', 'outboxQueue');
  return [
    assignment(STORAGE, 'a0000000-0000-0000-0000-000000000001', appStorage.id, APP, appStorage.reason),
    assignment(STORAGE, 'd0000000-0000-0000-0000-000000000001', devStorage.id, DEVELOPER, devStorage.reason, 'User'),
    assignment(VAULT, 'd0000000-0000-0000-0000-000000000002', devVault.id, DEVELOPER, devVault.reason, 'User'),
    assignment(CONTAINER, 'e0000000-0000-0000-0000-000000000001', relayBlob.id, RELAY, relayBlob.reason),
    assignment(QUEUE, 'e0000000-0000-0000-0000-000000000002', relayQueue.id, RELAY, relayQueue.reason),
    // Made by hand on the same scopes with the same roles: not ours, whatever the template declares.
    assignment(VAULT, 'f0000000-0000-0000-0000-000000000001', devVault.id, OTHER, null, 'User'),
    assignment(STORAGE, 'f0000000-0000-0000-0000-000000000002', devStorage.id, OTHER, 'granted by the ops team', 'User'),
    // Inherited from the subscription, with one of our descriptions: outside the resource group, never touched.
    assignment(
      `/subscriptions/${SUBSCRIPTION}`,
      'f0000000-0000-0000-0000-000000000003',
      devStorage.id,
      DEVELOPER,
      devStorage.reason,
      'User',
    ),
  ];
}

async function hook(arm: ArmStandIn, declared: string[], extra: NodeJS.ProcessEnv = {}, args: string[] = []) {
  return run(process.execPath, [script, ...args], {
    PATH: arm.path,
    AZURE_RESOURCE_GROUP_ID: RG,
    AZURE_RESOURCE_MANAGER_ENDPOINT: arm.url,
    AZURE_TENANT_ID: '00000000-0000-0000-0000-000000000001',
    ROLE_ASSIGNMENT_NAMES: declared.join(','),
    ...extra,
  });
}

describe('removing the role assignments the template no longer declares', () => {
  test("GRANT_DEVELOPER_ACCESS=false and an empty RELAY_PRINCIPAL_ID remove the developer's and the relay's, nothing else", async () => {
    const arm = await startArmStandIn({ assignments: deployedBefore(), pageSize: 3 });
    try {
      const result = await hook(arm, ['a0000000-0000-0000-0000-000000000001']);
      assert.equal(result.status, 0, result.stderr);
      assert.deepEqual(
        arm.assignments.map((a) => a.name).sort(),
        [
          'a0000000-0000-0000-0000-000000000001',
          'f0000000-0000-0000-0000-000000000001',
          'f0000000-0000-0000-0000-000000000002',
          'f0000000-0000-0000-0000-000000000003',
        ],
        'the app identity, the hand-made and the inherited assignments stay',
      );
      assert.match(
        result.stdout,
        /Removed the role assignment d0000000-0000-0000-0000-000000000001: Storage Blob Data Owner for User [0-9-]+d001 on \/providers\/Microsoft\.Storage\/storageAccounts\/stabc/,
      );
      assert.match(
        result.stdout,
        /Removed the role assignment e0000000-0000-0000-0000-000000000002: Storage Queue Data Message Sender for ServicePrincipal [0-9-]+e001 on .*queues\/mail-outbox/,
      );
      assert.equal(result.stdout.match(/^Removed/gm)?.length, 4);

      // Listed in pages (nextLink followed), then deleted one by one, all with azd's token.
      const gets = arm.requests.filter((r) => r.method === 'GET');
      assert.equal(gets.length, 3, 'three pages of three');
      assert.equal(gets[0]!.path, `${RG}/providers/Microsoft.Authorization/roleAssignments`);
      assert.equal(gets[0]!.query['api-version'], '2022-04-01');
      const deletes = arm.requests.filter((r) => r.method === 'DELETE');
      assert.equal(deletes.length, 4);
      for (const request of arm.requests) assert.equal(request.authorization, `Bearer ${arm.token}`);
      assert.deepEqual(arm.azdCalls(), [
        [
          'auth',
          'token',
          '--output',
          'json',
          '--scope',
          `${arm.url}.default`,
          '--tenant-id',
          '00000000-0000-0000-0000-000000000001',
        ],
      ]);

      // A second run finds nothing more to do.
      const again = await hook(arm, ['a0000000-0000-0000-0000-000000000001']);
      assert.equal(again.status, 0, again.stderr);
      assert.match(again.stdout, /declares 1; none left over from an earlier one/);
    } finally {
      await arm.close();
    }
  });

  test('keeps every assignment the deployment declares, whatever the case of the names', async () => {
    const arm = await startArmStandIn({ assignments: deployedBefore() });
    try {
      const declared = deployedBefore()
        .filter((a) => !a.name.startsWith('f'))
        .map((a) => a.name.toUpperCase());
      const result = await hook(arm, declared);
      assert.equal(result.status, 0, result.stderr);
      assert.equal(arm.assignments.length, deployedBefore().length);
      assert.equal(arm.requests.filter((r) => r.method === 'DELETE').length, 0);
    } finally {
      await arm.close();
    }
  });

  test("a changed relay: the old principal's assignments go, the new one's stay", async () => {
    const relayBlob = entry('relay', 'mimeContainer');
    const newRelay = assignment(CONTAINER, 'e0000000-0000-0000-0000-0000000000ff', relayBlob.id, OTHER, relayBlob.reason);
    const arm = await startArmStandIn({ assignments: [...deployedBefore(), newRelay] });
    try {
      const declared = deployedBefore()
        .filter((a) => !a.name.startsWith('f') && !a.name.startsWith('e'))
        .map((a) => a.name);
      const result = await hook(arm, [...declared, newRelay.name]);
      assert.equal(result.status, 0, result.stderr);
      const left = arm.assignments.map((a) => a.name);
      assert.ok(left.includes(newRelay.name));
      assert.ok(!left.some((name) => name.startsWith('e0000000-0000-0000-0000-00000000000')));
    } finally {
      await arm.close();
    }
  });

  test('--dry-run says what it would remove and removes nothing', async () => {
    const arm = await startArmStandIn({ assignments: deployedBefore() });
    try {
      const result = await hook(arm, ['a0000000-0000-0000-0000-000000000001'], {}, ['--dry-run']);
      assert.equal(result.status, 0, result.stderr);
      assert.equal(result.stdout.match(/^Would remove the role assignment/gm)?.length, 4);
      assert.equal(arm.requests.filter((r) => r.method === 'DELETE').length, 0);
      assert.equal(arm.assignments.length, deployedBefore().length);
    } finally {
      await arm.close();
    }
  });

  test('fails (and so does azd provision) when it cannot check: no token, a refused delete, no outputs', async () => {
    const noToken = await startArmStandIn({ assignments: deployedBefore(), azdExit: 1 });
    try {
      const result = await hook(noToken, ['a0000000-0000-0000-0000-000000000001']);
      assert.equal(result.status, 1);
      assert.match(result.stderr, /azd auth token failed \(exit 1\): ERROR: not logged in/);
      assert.match(result.stderr, /azd hooks run postprovision/);
      assert.equal(noToken.requests.length, 0);
    } finally {
      await noToken.close();
    }

    const refused = await startArmStandIn({ assignments: deployedBefore(), deleteStatus: 403 });
    try {
      const result = await hook(refused, ['a0000000-0000-0000-0000-000000000001']);
      assert.equal(result.status, 1);
      assert.match(result.stderr, /DELETE .* answered 403 AuthorizationFailed: not allowed to delete/);
    } finally {
      await refused.close();
    }

    const arm = await startArmStandIn({ assignments: deployedBefore() });
    try {
      for (const missing of ['ROLE_ASSIGNMENT_NAMES', 'AZURE_RESOURCE_GROUP_ID']) {
        const result = await hook(arm, ['a0000000-0000-0000-0000-000000000001'], { [missing]: '' });
        assert.equal(result.status, 1, missing);
        assert.match(result.stderr, new RegExp(`${missing} is not set`));
      }
      const plain = await hook(arm, ['x'], { AZURE_RESOURCE_MANAGER_ENDPOINT: 'http://management.example.com/' });
      assert.equal(plain.status, 1);
      assert.match(plain.stderr, /must be https/);
      assert.equal(arm.requests.length, 0, 'nothing was asked of Resource Manager');
    } finally {
      await arm.close();
    }
  });
});

describe('what the template declares and how it marks its own', () => {
  let rbac: BicepFile;
  let main: BicepFile;
  before(async () => {
    rbac = await readBicep(join(repo, 'infra/app/rbac.bicep'), repo);
    main = await readBicep(join(repo, 'infra/main.bicep'), repo);
  });

  test('every assignment carries its reason from roles.json as description, and the reasons tell them apart', () => {
    const assignments = resources(rbac).filter((r) => r.target === 'Microsoft.Authorization/roleAssignments');
    assert.equal(assignments.length, 10);
    for (const a of assignments) {
      // The relay's loops go over grants (a principal and a role), the others over roles.
      const role = a.name.startsWith('relay') ? `${a.loop?.variable}.role` : a.loop?.variable;
      assert.equal(property(a.body, 'properties.description')?.text, `${role}.reason`, a.name);
    }
    const reasons = ['appIdentity', 'developer', 'relay', 'retired'].flatMap((list) =>
      (roles[list as keyof typeof roles] ?? []).map((e) => e.reason),
    );
    assert.equal(new Set(reasons).size, reasons.length, 'no reason is used twice');
    assert.ok(Array.isArray(roles.retired), 'roles.json keeps the reasons of roles it no longer assigns under "retired"');
  });

  test('the output names every declared assignment, the optional ones only when their principal is named', () => {
    const output = find(rbac, 'output', 'roleAssignmentNames')?.value;
    const parts = callArguments(output).map((p) => p.text.replace(/\s+/g, ' '));
    assert.deepEqual(parts, [
      'appStorageNames',
      'appKeyVaultNames',
      'appMonitoringNames',
      'empty(developerPrincipalId) ? [] : concat(developerStorageNames, developerKeyVaultNames)',
      // One entry per relay principal (named, created, or both): empty lists when there is none.
      'relayContainerNames',
      'relayQueueNames',
      'relaySendersNames',
      'relayActivityNames',
      'relayMonitoringNames',
    ]);
    // Each names var lists the `name` of its resource loop, over the same roles.
    const assignments = resources(rbac).filter((r) => r.target === 'Microsoft.Authorization/roleAssignments');
    for (const a of assignments) {
      const names = find(rbac, 'var', `${a.name.replace(/Roles$/, '')}Names`)?.value?.text.replace(/\s+/g, ' ');
      assert.equal(names, `[for (${a.loop?.variable}, i) in ${a.loop?.source.text}: ${a.name}[i].name]`, a.name);
    }
    assert.equal(find(main, 'output', 'ROLE_ASSIGNMENT_NAMES')?.value?.text, "join(rbac.outputs.roleAssignmentNames, ',')");
    assert.equal(find(main, 'output', 'AZURE_RESOURCE_GROUP_ID')?.value?.text, 'rg.id');
    assert.equal(find(main, 'output', 'AZURE_RESOURCE_MANAGER_ENDPOINT')?.value?.text, 'environment().resourceManager');
  });

  test('the hook reads only outputs of the template (and AZURE_TENANT_ID)', () => {
    const source = readFileSync(script, 'utf8');
    const read = new Set([...source.matchAll(/(?:requiredEnv\(env, |env\.)'?([A-Z][A-Z0-9_]+)/g)].map((m) => m[1]!));
    assert.deepEqual([...read].sort(), [
      'AZURE_RESOURCE_GROUP_ID',
      'AZURE_RESOURCE_MANAGER_ENDPOINT',
      'AZURE_TENANT_ID',
      'ROLE_ASSIGNMENT_NAMES',
    ]);
    for (const name of read) assert.ok(find(main, 'output', name), `main.bicep outputs ${name}`);
  });
});
