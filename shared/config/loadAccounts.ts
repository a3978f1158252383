import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { ConfigError } from '../errors';
import { describeIssues } from '../schemaIssues';
import { readSetting, type Env } from '../settings';
import type { Account } from './account';
import { accountInputSchema, accountsInputSchema, type AccountInput } from './accountSchema';
import { PRESETS } from './presets';

export const DEFAULT_TOKEN_MIN_LIFETIME_SECONDS = 600;

/** Reads MAIL_ACCOUNTS (JSON) or MAIL_ACCOUNTS_FILE and returns the resolved accounts, or throws a ConfigError naming the bad field. */
export function loadAccounts(env: Env): Account[] {
  const inline = readSetting(env, 'MAIL_ACCOUNTS');
  const file = readSetting(env, 'MAIL_ACCOUNTS_FILE');
  let source: string;
  let text: string;
  if (inline) {
    source = 'MAIL_ACCOUNTS';
    text = inline;
  } else if (file) {
    source = `MAIL_ACCOUNTS_FILE (${file})`;
    try {
      text = readFileSync(file, 'utf8');
    } catch (error) {
      throw new ConfigError(`${source}: cannot read the file: ${(error as Error).message}`);
    }
  } else {
    throw new ConfigError('No accounts configured: set MAIL_ACCOUNTS (a JSON array) or MAIL_ACCOUNTS_FILE.');
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new ConfigError(`${source} is not valid JSON: ${(error as Error).message}`);
  }
  const extraAlerts = extraAlertsOf(env);
  return parseAccounts(json, { source, extraAlerts });
}

export function parseAccounts(json: unknown, opts: { source?: string; extraAlerts?: string[] } = {}): Account[] {
  const source = opts.source ?? 'MAIL_ACCOUNTS';
  const parsed = accountsInputSchema.safeParse(json);
  if (!parsed.success) throw new ConfigError(formatIssues(source, parsed.error));
  const inputs = parsed.data;
  const problems: string[] = [];
  const seen = new Set<string>();
  inputs.forEach((input, index) => {
    if (seen.has(input.id)) problems.push(`${source}[${index}].id: "${input.id}" is used twice`);
    seen.add(input.id);
    for (const problem of checkAccount(input)) problems.push(`${source}[${index}].${problem}`);
  });
  if (inputs.filter((a) => a.default).length > 1) problems.push(`${source}: more than one account has "default": true`);
  if (problems.length > 0) throw new ConfigError(`Invalid account configuration:\n  ${problems.join('\n  ')}`);

  const defaultId = inputs.find((a) => a.default)?.id ?? inputs.find((a) => a.id === 'default')?.id ?? inputs[0]?.id;
  return inputs.map((input) => resolveAccount(input, input.id === defaultId, opts.extraAlerts ?? []));
}

/** One account as typed on the status page or sent to the accounts API, checked by the same rules as MAIL_ACCOUNTS. */
export type ParsedAccountInput = { ok: true; input: AccountInput; account: Account } | { ok: false; problems: string[] };

/**
 * Validates one account with the MAIL_ACCOUNTS schema and cross-field rules; each problem names its field
 * (`smtp.port: ...`). `isDefault` is decided by the caller, which knows the other accounts.
 */
export function parseAccountInput(json: unknown, opts: { isDefault?: boolean; extraAlerts?: string[] } = {}): ParsedAccountInput {
  const parsed = accountInputSchema.safeParse(json);
  if (!parsed.success) return { ok: false, problems: describeIssues(parsed.error, { limit: 50 }) };
  const problems = checkAccount(parsed.data);
  if (problems.length > 0) return { ok: false, problems };
  return {
    ok: true,
    input: parsed.data,
    account: resolveAccount(parsed.data, opts.isDefault ?? false, opts.extraAlerts ?? []),
  };
}

/** ALERT_RECIPIENTS: receivers added to every account's alerts. */
export function extraAlertsOf(env: Env): string[] {
  return (readSetting(env, 'ALERT_RECIPIENTS') ?? '').split(/[,;\s]+/).filter(Boolean);
}

function formatIssues(source: string, error: z.ZodError): string {
  return `Invalid account configuration:\n  ${describeIssues(error, { prefix: source, limit: 50 }).join('\n  ')}`;
}

const LOOPBACK = /^(localhost|127\.\d+\.\d+\.\d+|\[?::1\]?)$/;

/** Rules that span fields; each problem is "field: sentence". */
function checkAccount(a: AccountInput): string[] {
  const problems: string[] = [];
  if (a.provider === 'microsoft' && !a.tenantId) problems.push('tenantId: required for provider "microsoft"');
  if (a.provider !== 'custom' && a.oauth?.scopes)
    problems.push(`oauth.scopes: scopes for provider "${a.provider}" come from the preset; remove this field`);
  // A local stand-in of Microsoft's sign-in (the local stack's Graph demo) may replace the preset issuer; nothing else.
  if (a.provider !== 'custom' && a.oauth?.issuer && !(a.provider === 'microsoft' && isLoopbackUrl(a.oauth.issuer)))
    problems.push(`oauth.issuer: the issuer for provider "${a.provider}" comes from the preset; remove this field`);
  if (a.provider !== 'custom' && a.oauth?.refreshTokenRotation)
    problems.push(
      `oauth.refreshTokenRotation: how provider "${a.provider}" rotates refresh tokens comes from the preset; remove this field`,
    );
  if (a.provider === 'custom' && !a.oauth?.issuer)
    problems.push('oauth.issuer: required for provider "custom" (its discovery URL base)');
  if (a.provider === 'custom' && !a.oauth?.scopes) problems.push('oauth.scopes: required for provider "custom"');
  if (a.provider === 'custom' && !a.smtp?.host) problems.push('smtp.host: required for provider "custom"');
  if (a.provider === 'google' && a.flow === 'client_credentials')
    problems.push('flow: Google does not offer client credentials for SMTP; use authorization_code');
  const scopes = a.oauth?.scopes ?? [];
  if (scopes.some((s) => s.endsWith('/.default')) && scopes.length > 1)
    problems.push('oauth.scopes: ".default" cannot be mixed with named scopes');
  if (scopes.some((s) => /graph\.microsoft\.com\/SMTP\.Send/i.test(s)))
    problems.push('oauth.scopes: SMTP needs https://outlook.office.com/SMTP.Send, not the Graph scope');
  const smtpHost = a.smtp?.host ?? PRESETS[a.provider].smtp.host;
  if (a.smtp?.security === 'plain' && !LOOPBACK.test(smtpHost))
    problems.push('smtp.security: "plain" (no TLS) is allowed only for a local server on loopback');
  if (a.clientAuth?.type === 'none' && a.provider !== 'custom')
    problems.push(`clientAuth: provider "${a.provider}" needs a confidential client (secret, certificate or managed_identity)`);
  problems.push(...checkGraph(a));
  const from = (a.from ?? a.user).toLowerCase();
  if (a.allowedFrom && !a.allowedFrom.some((addr) => addr.toLowerCase() === from))
    problems.push(`allowedFrom: must include the default From address ${from}`);
  return problems;
}

/** Microsoft Graph is Microsoft's: Google and custom providers send by SMTP only. */
function checkGraph(a: AccountInput): string[] {
  const problems: string[] = [];
  if (a.provider !== 'microsoft') {
    const onlyMicrosoft = `only provider "microsoft" can send through Microsoft Graph; provider "${a.provider}" sends by SMTP`;
    if (a.transport !== undefined && a.transport !== 'smtp') problems.push(`transport: ${onlyMicrosoft}`);
    if (a.saveToSentItems !== undefined) problems.push(`saveToSentItems: ${onlyMicrosoft}; remove this field`);
    if (a.graph !== undefined) problems.push(`graph: ${onlyMicrosoft}; remove this field`);
    return problems;
  }
  const baseUrl = a.graph?.baseUrl;
  if (baseUrl && new URL(baseUrl).protocol !== 'https:' && !isLoopbackUrl(baseUrl))
    problems.push('graph.baseUrl: must use https (plain http only for a local stand-in on loopback)');
  return problems;
}

function isLoopbackUrl(url: string): boolean {
  try {
    return LOOPBACK.test(new URL(url).hostname);
  } catch {
    return false;
  }
}

function resolveAccount(input: AccountInput, isDefault: boolean, extraAlerts: string[]): Account {
  const preset = PRESETS[input.provider];
  const from = input.from ?? input.user;
  const appOnly = input.flow === 'client_credentials';
  const scopes = input.oauth?.scopes ?? (appOnly ? (preset.appOnlyScopes ?? preset.delegatedScopes) : preset.delegatedScopes);
  const issuer = input.oauth?.issuer ?? preset.issuer.replace('{tenant}', input.tenantId ?? '');
  return {
    id: input.id,
    displayName: input.displayName ?? input.id,
    provider: input.provider,
    isDefault,
    flow: input.flow,
    ...(input.tenantId ? { tenantId: input.tenantId } : {}),
    clientId: input.clientId,
    clientAuth: input.clientAuth ?? { type: 'secret', secretName: `${input.id}-client-secret` },
    user: input.user,
    from,
    allowedFrom: [...new Set([from, ...(input.allowedFrom ?? [])].map((x) => x.toLowerCase()))],
    defaults: { ...(input.defaults?.replyTo ? { replyTo: input.defaults.replyTo } : {}), headers: input.defaults?.headers ?? {} },
    smtp: {
      host: input.smtp?.host ?? preset.smtp.host,
      port: input.smtp?.port ?? (input.smtp?.security === 'tls' ? 465 : input.smtp?.host ? 587 : preset.smtp.port),
      security: input.smtp?.security ?? (input.smtp?.port === 465 ? 'tls' : preset.smtp.security),
      ...(input.smtp?.caFile ? { caFile: input.smtp.caFile } : {}),
    },
    oauth: {
      issuer,
      scopes,
      authParams: appOnly ? {} : preset.authParams,
      ...(appOnly && preset.appOnlyToken ? { appOnlyToken: preset.appOnlyToken } : {}),
      refreshTokenRotation: input.oauth?.refreshTokenRotation ?? preset.refreshTokenRotation,
    },
    limits: {
      messagesPerMinute: input.rateLimit?.messagesPerMinute ?? preset.rateLimit.messagesPerMinute,
      concurrentConnections: input.rateLimit?.concurrentConnections ?? preset.rateLimit.concurrentConnections,
      ...((input.rateLimit?.recipientsPerDay ?? preset.rateLimit.recipientsPerDay)
        ? { recipientsPerDay: input.rateLimit?.recipientsPerDay ?? preset.rateLimit.recipientsPerDay }
        : {}),
      maxRecipientsPerMessage: preset.maxRecipientsPerMessage,
      maxMessageBytes: preset.maxMessageBytes,
    },
    alerts: [...new Set([...(input.alerts ?? []), ...extraAlerts])],
    tokenMinLifetimeSeconds: input.tokenMinLifetimeSeconds ?? DEFAULT_TOKEN_MIN_LIFETIME_SECONDS,
    transport: input.transport ?? 'smtp',
    ...(preset.graph
      ? {
          graph: {
            ...preset.graph,
            baseUrl: (input.graph?.baseUrl ?? preset.graph.baseUrl).replace(/\/+$/, ''),
            saveToSentItems: input.saveToSentItems ?? true,
          },
        }
      : {}),
  };
}

export function findAccount(accounts: readonly Account[], id: string | undefined): Account | undefined {
  return id === undefined ? accounts.find((a) => a.isDefault) : accounts.find((a) => a.id === id);
}
