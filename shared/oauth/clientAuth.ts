import { createHash, createPrivateKey, X509Certificate } from 'node:crypto';
import { CredentialUnavailableError, ManagedIdentityCredential, type TokenCredential } from '@azure/identity';
import { importPKCS8 } from 'jose';
import * as client from 'openid-client';
import type { Account, ClientAuth as ClientAuthConfig } from '../config';
import { AccountError, TransientError } from '../errors';
import { redactText } from '../log/redact';
import { readSetting, type Env } from '../settings';
import type { SecretStore } from '../storage/secretStore';

/**
 * How the app proves itself at the token endpoint, per account (`clientAuth`):
 * - `secret`: client secret read from the secret store (Key Vault) by name;
 * - `certificate`: private_key_jwt signed with the certificate's key from the secret store, `x5t` in the header;
 * - `managed_identity`: the app's managed identity token for `api://AzureADTokenExchange`, sent as the client
 *   assertion (Entra ID federated identity credential): no secret exists anywhere;
 * - `none`: public client (custom providers only).
 * Material is read on every call, so a rotated secret or certificate is picked up without a restart.
 */
export const JWT_BEARER_ASSERTION = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';

/** Builds the managed identity credential; tests replace ManagedIdentityCredential with their own. */
export type ManagedIdentityCredentialFactory = (clientId: string | undefined) => TokenCredential;

export interface ClientAuthDeps {
  secrets: SecretStore;
  env: Env;
  managedIdentityCredential?: ManagedIdentityCredentialFactory;
}

export async function resolveClientAuth(deps: ClientAuthDeps, account: Account): Promise<client.ClientAuth> {
  const config = account.clientAuth;
  switch (config.type) {
    case 'secret':
      return clientSecret(await readRequiredSecret(deps, account, config.secretName, 'client secret'));
    case 'certificate':
      return certificateAssertion(
        account,
        config,
        await readRequiredSecret(deps, account, config.keySecretName, 'certificate private key'),
      );
    case 'managed_identity':
      return managedIdentityAssertion(await managedIdentityToken(deps, account, config));
    case 'none':
      return client.None();
  }
}

/** client_secret_post where the provider supports it (Microsoft, Google), else client_secret_basic. */
export function clientSecret(secret: string): client.ClientAuth {
  const post = client.ClientSecretPost(secret);
  const basic = client.ClientSecretBasic(secret);
  return (as, metadata, body, headers) => {
    const methods = as.token_endpoint_auth_methods_supported;
    const usePost = !Array.isArray(methods) || methods.includes('client_secret_post');
    return (usePost ? post : basic)(as, metadata, body, headers);
  };
}

/** Sends a ready-made JWT (here: the managed identity's token) as the client assertion. */
export function managedIdentityAssertion(assertion: string): client.ClientAuth {
  return (_as, metadata, body) => {
    body.set('client_id', metadata.client_id);
    body.set('client_assertion_type', JWT_BEARER_ASSERTION);
    body.set('client_assertion', assertion);
  };
}

type CertificateConfig = Extract<ClientAuthConfig, { type: 'certificate' }>;
type ManagedIdentityConfig = Extract<ClientAuthConfig, { type: 'managed_identity' }>;

export async function certificateAssertion(account: Account, config: CertificateConfig, pem: string): Promise<client.ClientAuth> {
  const thumbprint = config.thumbprint.toLowerCase();
  const certificate = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/)?.[0];
  if (certificate) {
    const actual = createHash('sha1').update(new X509Certificate(certificate).raw).digest('hex');
    if (actual !== thumbprint) {
      throw new AccountError(
        'config_error',
        `Account "${account.id}": the certificate in secret "${config.keySecretName}" has thumbprint ${actual.toUpperCase()}, but the configuration says ${thumbprint.toUpperCase()}.`,
      );
    }
  }
  let pkcs8: string;
  let alg: string;
  try {
    // Accepts PKCS#8 and PKCS#1 PEM, alone or next to the certificate (Key Vault's PEM export has both).
    const key = createPrivateKey(pem);
    alg = key.asymmetricKeyType === 'ec' ? 'ES256' : 'RS256';
    pkcs8 = key.export({ type: 'pkcs8', format: 'pem' }).toString();
  } catch {
    throw new AccountError(
      'config_error',
      `Account "${account.id}": secret "${config.keySecretName}" does not hold a PEM private key (PKCS#8 or PKCS#1).`,
    );
  }
  const key = await importPKCS8(pkcs8, alg);
  // Microsoft identifies the certificate by x5t (base64url SHA-1 thumbprint) and wants the token endpoint as audience.
  const x5t = Buffer.from(thumbprint, 'hex').toString('base64url');
  return (as, metadata, body, headers) =>
    client.PrivateKeyJwt(key, {
      [client.modifyAssertion]: (header, payload) => {
        header.x5t = x5t;
        if (account.provider === 'microsoft' && as.token_endpoint) payload.aud = as.token_endpoint;
      },
    })(as, metadata, body, headers);
}

async function managedIdentityToken(deps: ClientAuthDeps, account: Account, config: ManagedIdentityConfig): Promise<string> {
  const clientId = config.identityClientId ?? readSetting(deps.env, 'AZURE_CLIENT_ID');
  const factory =
    deps.managedIdentityCredential ??
    ((id: string | undefined) => (id ? new ManagedIdentityCredential({ clientId: id }) : new ManagedIdentityCredential()));
  const scope = `${config.audience.replace(/\/+$/, '')}/.default`;
  try {
    const token = await factory(clientId).getToken(scope);
    if (!token?.token) throw new Error('no token returned');
    return token.token;
  } catch (error) {
    const detail = redactText(error instanceof Error ? error.message : String(error)).slice(0, 300);
    if (error instanceof CredentialUnavailableError) {
      throw new AccountError(
        'config_error',
        `Account "${account.id}": no managed identity is available${clientId ? ` with client ID ${clientId}` : ''} to act as the client credential (${detail}). Assign the user-assigned identity to the function app and set AZURE_CLIENT_ID.`,
      );
    }
    throw new TransientError(
      'token_unavailable',
      `Account "${account.id}": the managed identity token for ${scope} could not be obtained: ${detail}`,
    );
  }
}

async function readRequiredSecret(deps: ClientAuthDeps, account: Account, name: string, what: string): Promise<string> {
  const value = await deps.secrets.get(name);
  if (value === undefined || value === '') {
    throw new AccountError(
      'config_error',
      `Account "${account.id}": the ${what} is missing. Store it in Key Vault as secret "${name}".`,
    );
  }
  return value;
}
