import * as client from 'openid-client';
import type { Account } from '../config';
import { AccountError, TransientError } from '../errors';
import { redactText } from '../log/redact';
import { resolveClientAuth, type ClientAuthDeps } from './clientAuth';
import { classifyTokenEndpointError } from './tokenEndpointErrors';

/**
 * The openid-client Configuration of an account: the provider's metadata from discovery (cached per account
 * for the life of the process) plus this account's client authentication, resolved again on every call so that
 * a rotated secret, certificate or managed identity token is used at once.
 *
 *   const config = await providerConfiguration(app, account);
 *   const response = await client.refreshTokenGrant(config, refreshToken);
 */

/** Seconds before a request to the provider is abandoned. */
export const PROVIDER_TIMEOUT_SECONDS = 20;

interface ProviderEntry {
  discovered?: Promise<client.Configuration>;
  auth: { current: client.ClientAuth };
}

/** The provider configurations of all accounts in this process: discovery once, client authentication per call. */
export class ProviderClients {
  private readonly entries = new Map<string, ProviderEntry>();

  constructor(private readonly deps: ClientAuthDeps) {}

  async configuration(account: Account): Promise<client.Configuration> {
    let entry = this.entries.get(account.id);
    if (!entry) {
      entry = { auth: { current: client.None() } };
      this.entries.set(account.id, entry);
    }
    const auth = await resolveClientAuth(this.deps, account);
    if (!entry.discovered) {
      const discovered = discover(account, entry.auth);
      entry.discovered = discovered;
      // A failed discovery is not cached: the next request tries again.
      discovered.catch(() => {
        if (entry.discovered === discovered) entry.discovered = undefined;
      });
    }
    const config = await entry.discovered;
    entry.auth.current = auth;
    return config;
  }

  /** Drops the cached discovery of an account (e.g. after its configuration changed). */
  forget(accountId: string): void {
    this.entries.delete(accountId);
  }
}

/** Those who need a provider configuration receive the process's ProviderClients. */
export interface OAuthContext {
  providers: ProviderClients;
}

export function providerConfiguration(context: OAuthContext, account: Account): Promise<client.Configuration> {
  return context.providers.configuration(account);
}

const LOOPBACK_HOST = /^(localhost|127(?:\.\d{1,3}){3}|\[::1\])$/i;

export function isLoopbackUrl(url: URL): boolean {
  return LOOPBACK_HOST.test(url.hostname);
}

async function discover(account: Account, auth: ProviderEntry['auth']): Promise<client.Configuration> {
  let issuer: URL;
  try {
    issuer = new URL(account.oauth.issuer);
  } catch {
    throw new AccountError('config_error', `Account "${account.id}": oauth.issuer is not a URL.`);
  }
  const insecure = issuer.protocol === 'http:';
  if (insecure && !isLoopbackUrl(issuer)) {
    throw new AccountError(
      'config_error',
      `Account "${account.id}": the issuer ${issuer.href} uses plain http; only https is allowed (http only for a local provider on loopback).`,
    );
  }
  const options: client.DiscoveryRequestOptions = {
    timeout: PROVIDER_TIMEOUT_SECONDS,
    // Without non-repudiation checks openid-client trusts the id_token from the token endpoint on the strength of
    // TLS alone; we verify its signature against the provider's keys as well.
    execute: [...(insecure ? [client.allowInsecureRequests] : []), client.enableNonRepudiationChecks],
  };
  try {
    return await client.discovery(
      issuer,
      account.clientId,
      undefined,
      (as, metadata, body, headers) => auth.current(as, metadata, body, headers),
      options,
    );
  } catch (error) {
    const failure = classifyTokenEndpointError(error);
    const detail = redactText(error instanceof Error ? error.message : String(error)).slice(0, 200);
    const unreachable =
      failure.code === 'network_error' || failure.code === 'timeout' || failure.status === 429 || (failure.status ?? 0) >= 500;
    if (unreachable) {
      throw new TransientError(
        'transient',
        `The provider of account "${account.id}" is unreachable (discovery at ${issuer.href}): ${failure.reason}`,
      );
    }
    throw new AccountError(
      'config_error',
      `Account "${account.id}": discovery at ${issuer.href} failed: ${detail}. Check oauth.issuer.`,
    );
  }
}
