#!/usr/bin/env node
/**
 * Post-provision step: removes the role assignments this template made in an earlier deployment and no longer
 * declares. A Bicep deployment never deletes what it stopped declaring, so without this step turning
 * GRANT_DEVELOPER_ACCESS off, or clearing or changing RELAY_PRINCIPAL_ID, would take nothing away.
 *
 * - Ours: role assignments inside the resource group whose description is a reason in infra/roles.json (the
 *   description infra/app/rbac.bicep gives each assignment), or one of its `retired` reasons. An assignment made
 *   by hand, in the portal or with az, has another description and is never touched.
 * - Kept: those named in ROLE_ASSIGNMENT_NAMES, the deployment's output listing every assignment it declares now.
 * - Removed: the rest of ours.
 *
 * Runs with the identity azd is signed in with (`azd auth token`), the one that just provisioned and so may delete
 * what it created; the Azure CLI is not needed. Reads the deployment outputs that azd passes to hooks:
 * AZURE_RESOURCE_GROUP_ID, ROLE_ASSIGNMENT_NAMES, AZURE_RESOURCE_MANAGER_ENDPOINT and AZURE_TENANT_ID.
 * `--dry-run` lists what it would remove and removes nothing.
 *
 *   node infra/hooks/removeStaleRoleAssignments.mjs [--dry-run]
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

const API_VERSION = '2022-04-01';
const ROLES_FILE = new URL('../roles.json', import.meta.url);

class StepError extends Error {}

/** The descriptions rbac.bicep writes (each role's reason), and role names by role definition id. */
function readRoles() {
  const roles = JSON.parse(readFileSync(ROLES_FILE, 'utf8'));
  const entries = ['appIdentity', 'developer', 'relay', 'retired'].flatMap((list) => roles[list] ?? []);
  return {
    reasons: new Set(entries.map((entry) => entry.reason)),
    roleNames: new Map(entries.map((entry) => [entry.id.toLowerCase(), entry.role])),
  };
}

function requiredEnv(env, name) {
  const value = env[name]?.trim();
  if (!value)
    throw new StepError(
      `${name} is not set: run this through azd (azd provision, or azd hooks run postprovision after a provision with this template).`,
    );
  return value;
}

/** Resource Manager's base URL, always with a trailing slash; plain http only for a loopback stand-in. */
function resourceManager(env) {
  const url = new URL(env.AZURE_RESOURCE_MANAGER_ENDPOINT?.trim() || 'https://management.azure.com/');
  const loopback = url.hostname === '127.0.0.1' || url.hostname === 'localhost' || url.hostname === '[::1]';
  if (url.protocol !== 'https:' && !loopback) throw new StepError(`AZURE_RESOURCE_MANAGER_ENDPOINT must be https: ${url.href}`);
  if (!url.pathname.endsWith('/')) url.pathname += '/';
  return url;
}

/** An access token for Resource Manager from azd, for the account it is signed in with. */
function accessToken(endpoint, tenantId) {
  const args = ['auth', 'token', '--output', 'json', '--scope', `${endpoint.href}.default`];
  if (tenantId) args.push('--tenant-id', tenantId);
  const run = spawnSync('azd', args, { encoding: 'utf8', shell: false });
  if (run.error) throw new StepError(`Could not run azd to get a token for Resource Manager: ${run.error.message}`);
  if (run.status !== 0) throw new StepError(`azd auth token failed (exit ${run.status}): ${(run.stderr || run.stdout).trim()}`);
  let token;
  try {
    token = JSON.parse(run.stdout).token;
  } catch {
    token = undefined;
  }
  if (typeof token !== 'string' || token === '') throw new StepError('azd auth token printed no token.');
  return token;
}

async function call(method, url, token) {
  const response = await fetch(url, { method, headers: { authorization: `Bearer ${token}` } });
  if (!response.ok && !(method === 'DELETE' && response.status === 204)) {
    const body = await response.text().catch(() => '');
    const message = (() => {
      try {
        const error = JSON.parse(body).error;
        return error ? `${error.code}: ${error.message}` : body;
      } catch {
        return body;
      }
    })();
    throw new StepError(`${method} ${url.pathname} answered ${response.status} ${message}`.trim());
  }
  return response.status === 204 ? undefined : response.json().catch(() => undefined);
}

/** Every role assignment at, above or below the resource group (the API's answer without a filter), all pages. */
async function listAssignments(endpoint, resourceGroupId, token) {
  const found = [];
  let next = new URL(`${resourceGroupId.replace(/^\//, '')}/providers/Microsoft.Authorization/roleAssignments`, endpoint);
  next.searchParams.set('api-version', API_VERSION);
  while (next) {
    const page = await call('GET', next, token);
    found.push(...(page?.value ?? []));
    next = page?.nextLink ? new URL(page.nextLink) : undefined;
  }
  return found;
}

function within(scope, resourceGroupId) {
  const s = String(scope ?? '').toLowerCase();
  const rg = resourceGroupId.toLowerCase();
  return s === rg || s.startsWith(`${rg}/`);
}

function roleDefinitionGuid(roleDefinitionId) {
  return String(roleDefinitionId ?? '')
    .split('/')
    .pop()
    .toLowerCase();
}

async function run(argv, env, out) {
  const dryRun = argv.includes('--dry-run');
  const resourceGroupId = requiredEnv(env, 'AZURE_RESOURCE_GROUP_ID');
  const declared = new Set(
    requiredEnv(env, 'ROLE_ASSIGNMENT_NAMES')
      .split(',')
      .map((name) => name.trim().toLowerCase())
      .filter(Boolean),
  );
  const endpoint = resourceManager(env);
  const { reasons, roleNames } = readRoles();
  const token = accessToken(endpoint, env.AZURE_TENANT_ID?.trim());

  const stale = (await listAssignments(endpoint, resourceGroupId, token)).filter(
    (assignment) =>
      within(assignment.properties?.scope, resourceGroupId) &&
      reasons.has(assignment.properties?.description) &&
      !declared.has(String(assignment.name).toLowerCase()),
  );
  if (stale.length === 0) {
    out.log(`Role assignments: this deployment declares ${declared.size}; none left over from an earlier one.`);
    return 0;
  }
  for (const assignment of stale) {
    const { principalId, principalType, roleDefinitionId, scope } = assignment.properties;
    const role = roleNames.get(roleDefinitionGuid(roleDefinitionId)) ?? roleDefinitionGuid(roleDefinitionId);
    const what = `${role} for ${principalType ?? 'principal'} ${principalId} on ${scope.slice(resourceGroupId.length) || 'the resource group'}`;
    if (dryRun) {
      out.log(`Would remove the role assignment ${assignment.name}: ${what}`);
      continue;
    }
    const url = new URL(assignment.id.replace(/^\//, ''), endpoint);
    url.searchParams.set('api-version', API_VERSION);
    await call('DELETE', url, token);
    out.log(`Removed the role assignment ${assignment.name}: ${what}`);
  }
  return 0;
}

run(process.argv.slice(2), process.env, console).then(
  (code) => process.exit(code),
  (error) => {
    console.error(
      error instanceof StepError
        ? `Removing the role assignments this template no longer declares failed: ${error.message}`
        : error,
    );
    console.error('Once the cause is fixed, run it again: azd hooks run postprovision');
    process.exit(1);
  },
);
