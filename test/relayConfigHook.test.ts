/**
 * The post-provision hook writes a relay.json for the relay's identity, from the deployment's outputs: the file the
 * relay itself accepts, with the credential that fits how the identity was made, and never over one that exists.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { parseRelayConfig } from '../relay/config';

const script = join(import.meta.dirname, '..', 'infra', 'hooks', 'writeRelayConfig.mjs');
const folders: string[] = [];
after(() => folders.forEach((folder) => rmSync(folder, { recursive: true, force: true })));

const OUTPUTS = {
  AZURE_ENV_NAME: 'dev',
  AZURE_TENANT_ID: '00000000-0000-0000-0000-000000000001',
  AZURE_RESOURCE_GROUP: 'rg-dev',
  AZURE_STORAGE_ACCOUNT_NAME: 'stabc123',
  APPLICATIONINSIGHTS_NAME: 'appi-abc123',
  MAIL_ACCOUNTS: JSON.stringify([
    { id: 'scans', provider: 'microsoft', user: 'scans@contoso.com', allowedFrom: ['scanner@contoso.com'] },
  ]),
};
const CREATED = {
  RELAY_IDENTITY_NAME: 'id-relay-abc123',
  RELAY_IDENTITY_CLIENT_ID: '00000000-0000-0000-0000-00000000000c',
  RELAY_IDENTITY_PRINCIPAL_ID: '00000000-0000-0000-0000-00000000000d',
  RELAY_IDENTITY_RESOURCE_ID:
    '/subscriptions/s/resourceGroups/rg-dev/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id-relay-abc123',
};

function runHook(vars: Record<string, string>, cwd = mkdtempSync(join(tmpdir(), 'relay-hook-'))) {
  folders.push(cwd);
  const result = spawnSync(process.execPath, [script], { cwd, env: { PATH: process.env.PATH, ...vars }, encoding: 'utf8' });
  const file = join(cwd, '.azure', vars.AZURE_ENV_NAME ?? 'default', 'relay.json');
  return { ...result, cwd, file };
}

function written(file: string) {
  return JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown> & {
    storage: { blobServiceUrl: string; queueServiceUrl: string; credential: Record<string, string> };
    devices: { account: string; allowedFrom: string[] }[];
  };
}

describe('post-provision: relay.json for the relay identity', () => {
  test('a created identity: the managed identity by client id, storage of this deployment, and the relay accepts it', () => {
    const result = runHook({ ...OUTPUTS, ...CREATED });
    assert.equal(result.status, 0, result.stderr);
    const config = written(result.file);
    assert.deepEqual(config.storage, {
      blobServiceUrl: 'https://stabc123.blob.core.windows.net',
      queueServiceUrl: 'https://stabc123.queue.core.windows.net',
      credential: { type: 'managedIdentity', clientId: CREATED.RELAY_IDENTITY_CLIENT_ID },
    });
    assert.deepEqual(config.devices[0]?.account, 'scans');
    assert.deepEqual(config.devices[0]?.allowedFrom, ['scanner@contoso.com']);
    const relay = parseRelayConfig(config);
    assert.equal(relay.devices.length, 1);
    assert.match(result.stdout, /wrote \.azure\/dev\/relay\.json/);
    assert.match(result.stdout, /az vm identity assign .*--identities \/subscriptions\/s\/.*id-relay-abc123/);
    assert.match(result.stdout, /az monitor app-insights component show --resource-group rg-dev --app appi-abc123/);
  });

  test('a federated identity: Kubernetes workload identity, with what to annotate', () => {
    const result = runHook({
      ...OUTPUTS,
      ...CREATED,
      RELAY_FEDERATED_ISSUER: 'https://oidc.prod-aks.azure.com/tenant/cluster/',
      RELAY_FEDERATED_SUBJECT: 'system:serviceaccount:mail:relay',
    });
    assert.equal(result.status, 0, result.stderr);
    const config = written(result.file);
    assert.deepEqual(config.storage.credential, {
      type: 'workloadIdentity',
      tenantId: OUTPUTS.AZURE_TENANT_ID,
      clientId: CREATED.RELAY_IDENTITY_CLIENT_ID,
    });
    parseRelayConfig(config);
    assert.match(result.stdout, /azure\.workload\.identity\/client-id: 00000000-0000-0000-0000-00000000000c/);
    assert.match(result.stdout, /system:serviceaccount:mail:relay/);
  });

  test('a principal named by RELAY_PRINCIPAL_ID: an app registration with a certificate, its ids left to fill in', () => {
    const result = runHook({ ...OUTPUTS, RELAY_PRINCIPAL_ID: '00000000-0000-0000-0000-00000000000e' });
    assert.equal(result.status, 0, result.stderr);
    const config = written(result.file);
    assert.equal(config.storage.credential.type, 'clientCertificate');
    assert.equal(config.storage.credential.tenantId, OUTPUTS.AZURE_TENANT_ID);
    assert.match(config.storage.credential.clientId!, /application \(client\) id/);
    parseRelayConfig(config);
    const named = runHook({
      ...OUTPUTS,
      RELAY_PRINCIPAL_ID: '00000000-0000-0000-0000-00000000000e',
      RELAY_CLIENT_ID: 'app-client-id',
    });
    assert.equal(written(named.file).storage.credential.clientId, 'app-client-id', 'RELAY_CLIENT_ID fills it in');
  });

  test('keeps a relay.json that is there, prints what it would write, and writes nothing without a relay identity', () => {
    const first = runHook({ ...OUTPUTS, ...CREATED });
    writeFileSync(first.file, '{"edited": true}');
    const again = runHook({ ...OUTPUTS, ...CREATED }, first.cwd);
    assert.equal(again.status, 0, again.stderr);
    assert.equal(readFileSync(first.file, 'utf8'), '{"edited": true}');
    assert.match(again.stdout, /exists and is kept/);
    assert.match(again.stdout, /"clientId": "00000000-0000-0000-0000-00000000000c"/);

    const none = runHook(OUTPUTS);
    assert.equal(none.status, 0, none.stderr);
    assert.match(none.stdout, /SMTP relay: not set up/);
    assert.throws(() => readFileSync(none.file), /ENOENT/);
  });

  test('without MAIL_ACCOUNTS the example device still makes a file the relay accepts', () => {
    const result = runHook({ ...OUTPUTS, ...CREATED, MAIL_ACCOUNTS: '' });
    assert.equal(result.status, 0, result.stderr);
    parseRelayConfig(written(result.file));
  });
});
