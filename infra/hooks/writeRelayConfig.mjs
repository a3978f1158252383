// Post-provision: writes a relay.json for the SMTP relay's identity into the azd environment's folder
// (.azure/<environment>/relay.json), from the deployment's outputs, and prints it with what to do next.
//
// The identity decides the credential: the managed identity the deployment created (CREATE_RELAY_IDENTITY) is used
// through Kubernetes workload identity when it was federated (RELAY_FEDERATED_ISSUER), otherwise as the managed
// identity of the Azure VM or container it is attached to; a principal named by RELAY_PRINCIPAL_ID is taken to be an
// app registration with a certificate. Without either, the relay is not set up and nothing is written.
//
// A relay.json already there is kept (it may hold devices and passwords): the new one is printed, not written.
// Nothing in the file is secret: storage URLs, ids, file paths, and a device that logs in by its network only.
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const env = process.env;

/** Where a relay on a plain box keeps the PEM file of its app registration's certificate. */
const CERTIFICATE_FILE = '/etc/oauth-outbox-relay/storage-identity.pem';
/** TEST-NET-1 (RFC 5737): matches no device until an administrator puts the device's own network here. */
const PLACEHOLDER_NETWORK = '192.0.2.0/24';

/** The relay's identity as the deployment left it, or undefined when it has none. */
function relayIdentity(vars) {
  const tenantId = vars.AZURE_TENANT_ID || undefined;
  if (vars.RELAY_IDENTITY_CLIENT_ID) {
    const clientId = vars.RELAY_IDENTITY_CLIENT_ID;
    if (vars.RELAY_FEDERATED_ISSUER)
      return {
        kind: 'created, federated',
        credential: { type: 'workloadIdentity', ...(tenantId ? { tenantId } : {}), clientId },
      };
    return { kind: 'created', credential: { type: 'managedIdentity', clientId } };
  }
  if (vars.RELAY_PRINCIPAL_ID)
    return {
      kind: 'named',
      credential: {
        type: 'clientCertificate',
        tenantId: tenantId ?? '<directory (tenant) id>',
        clientId: vars.RELAY_CLIENT_ID || '<application (client) id of the app registration>',
        certificateFile: CERTIFICATE_FILE,
      },
    };
  return undefined;
}

/** The first account of MAIL_ACCOUNTS with a sender address, for the example device. */
function firstAccount(vars) {
  let accounts = [];
  try {
    accounts = JSON.parse(vars.MAIL_ACCOUNTS || '[]');
  } catch {
    // The deployment validated it; an unreadable value only costs the example its real account.
  }
  for (const account of Array.isArray(accounts) ? accounts : []) {
    const from = account?.allowedFrom?.[0] ?? account?.user;
    if (typeof account?.id === 'string' && typeof from === 'string' && from.includes('@')) return { id: account.id, from };
  }
  return { id: 'default', from: 'scanner@example.com' };
}

/** The relay.json for this deployment (test/relayConfigHook.test.ts checks it with the relay's own schema). */
function relayConfigFor(vars, identity) {
  const storageAccount = vars.AZURE_STORAGE_ACCOUNT_NAME;
  const account = firstAccount(vars);
  return {
    listeners: { starttls: { port: 587 }, tls: { port: 465 } },
    tls: { certFile: '/etc/oauth-outbox-relay/tls/fullchain.pem', keyFile: '/etc/oauth-outbox-relay/tls/privkey.pem' },
    storage: {
      blobServiceUrl: `https://${storageAccount}.blob.core.windows.net`,
      queueServiceUrl: `https://${storageAccount}.queue.core.windows.net`,
      credential: identity.credential,
    },
    health: { port: 8025 },
    devices: [
      {
        name: 'first-device',
        account: account.id,
        allowedFrom: [account.from],
        sourceRanges: [PLACEHOLDER_NETWORK],
      },
    ],
  };
}

function nextSteps(vars, identity, file) {
  const lines = [];
  if (identity.kind === 'created, federated')
    lines.push(
      `   Identity: ${vars.RELAY_IDENTITY_NAME} (client id ${vars.RELAY_IDENTITY_CLIENT_ID}), trusting tokens of`,
      `   ${vars.RELAY_FEDERATED_ISSUER} for ${vars.RELAY_FEDERATED_SUBJECT}. Annotate that service account with`,
      `   azure.workload.identity/client-id: ${vars.RELAY_IDENTITY_CLIENT_ID} and label the pod azure.workload.identity/use: "true".`,
    );
  else if (identity.kind === 'created')
    lines.push(
      `   Identity: ${vars.RELAY_IDENTITY_NAME} (client id ${vars.RELAY_IDENTITY_CLIENT_ID}). Attach it to the VM or container`,
      '   that runs the relay:',
      `     az vm identity assign --resource-group <rg> --name <vm> --identities ${vars.RELAY_IDENTITY_RESOURCE_ID}`,
    );
  else
    lines.push(
      `   Identity: the app registration whose service principal is ${vars.RELAY_PRINCIPAL_ID}. Put its application (client)`,
      `   id in "clientId" and its certificate with the private key (PEM) at ${CERTIFICATE_FILE}.`,
    );
  lines.push(
    '   Devices: replace the example device\'s "sourceRanges" with the device\'s own network, or give it a "user" and',
    '   a "passwordHash" (npm run relay -- hash-password --generate). TLS: the certificate of the relay\'s host name.',
    `   Check it where the relay runs: RELAY_CONFIG=${file} node relay.mjs check-config, then node relay.mjs send-test.`,
  );
  if (vars.APPLICATIONINSIGHTS_NAME)
    lines.push(
      '   Relay events in the workbook (optional): add "applicationInsights": {"connectionString": "…"} with the value of',
      `     az monitor app-insights component show --resource-group ${vars.AZURE_RESOURCE_GROUP ?? '<rg>'} --app ${vars.APPLICATIONINSIGHTS_NAME} --query connectionString --output tsv`,
    );
  return lines;
}

function main() {
  const identity = relayIdentity(env);
  if (!identity) {
    console.log('SMTP relay: not set up (CREATE_RELAY_IDENTITY or RELAY_PRINCIPAL_ID, see docs/relay.md).');
    return;
  }
  if (!env.AZURE_STORAGE_ACCOUNT_NAME) {
    console.error('AZURE_STORAGE_ACCOUNT_NAME is not set: run this hook through azd.');
    process.exitCode = 1;
    return;
  }
  const json = `${JSON.stringify(relayConfigFor(env, identity), null, 2)}\n`;
  const folder = join('.azure', env.AZURE_ENV_NAME || 'default');
  const file = join(folder, 'relay.json');
  const kept = existsSync(file);
  if (!kept) {
    mkdirSync(folder, { recursive: true });
    writeFileSync(file, json, { mode: 0o600 });
  }
  console.log(
    kept
      ? `SMTP relay: ${file} exists and is kept; for this deployment it would be:`
      : `SMTP relay: wrote ${file} (copy it to the relay as relay.json):`,
  );
  console.log('');
  console.log(json);
  for (const line of nextSteps(env, identity, 'relay.json')) console.log(line);
}

main();
