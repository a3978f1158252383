import { readTokenEndpointError } from './readTokenEndpointError';
import {
  FALLBACK_REASONS,
  isServerTrouble,
  MICROSOFT_CODES,
  OAUTH_ERRORS,
  type ClassifyContext,
  type Rule,
  type TokenFailureKind,
} from './tokenEndpointRules';

export type { ClassifyContext, TokenFailureKind } from './tokenEndpointRules';

export { aadstsCodes } from './readTokenEndpointError';

/**
 * Classifies a failed token endpoint request (code exchange, refresh, client credentials) into what the app
 * should do about it. Decisions come from the OAuth `error` field and, for Microsoft, the numeric AADSTS codes
 * (`error_codes`), never from the wording of `error_description`, which providers change and localize.
 *
 * - `reauthorize`: the grant is gone (expired, revoked, blocked): a person must authorize the mailbox again.
 * - `config`: the client is misconfigured (secret wrong or expired, app missing, consent missing): an admin
 *   must fix the app registration or the settings; authorizing again would not help.
 * - `transient`: the provider is unreachable or overloaded: retry later, no state change, no alert.
 *
 * `readTokenEndpointError` reads the thrown error; the tables in `tokenEndpointRules` say what each error means.
 */

export interface TokenEndpointFailure {
  kind: TokenFailureKind;
  /** The OAuth `error` (e.g. `invalid_grant`), or `network_error`, `timeout`, `http_<status>` without one. */
  code: string;
  /** Microsoft: the AADSTS code that decided, e.g. `AADSTS700082`. */
  providerCode?: string;
  /** A sentence for a person: what happened and what to do. Never contains provider text or secrets. */
  reason: string;
  /** HTTP status of the token endpoint's answer, when there was one. */
  status?: number;
}

/**
 * In order: no answer (transient); an answer without an OAuth `error` (transient); a known AADSTS code; a known
 * OAuth `error`; an unknown `error` with HTTP 429 or 5xx (transient); any other unknown `error` (config).
 */
export function classifyTokenEndpointError(error: unknown, context: ClassifyContext = {}): TokenEndpointFailure {
  const found = readTokenEndpointError(error);
  if (found.network) {
    return {
      kind: 'transient',
      code: found.network,
      reason: found.network === 'timeout' ? FALLBACK_REASONS.timeout : FALLBACK_REASONS.unreachable(found.networkDetail),
    };
  }
  const status = found.status;
  const statusPart = status !== undefined ? { status } : {};
  if (!found.error) {
    if (isServerTrouble(status)) {
      return {
        kind: 'transient',
        code: `http_${status}`,
        reason: status === 429 ? FALLBACK_REASONS.throttled : FALLBACK_REASONS.serverTrouble(status),
        ...statusPart,
      };
    }
    return {
      kind: 'transient',
      code: status !== undefined ? `http_${status}` : 'unexpected_response',
      reason: FALLBACK_REASONS.notOAuth,
      ...statusPart,
    };
  }

  const oauthError = found.error;
  const microsoft = decidingMicrosoftCode(found.codes);
  if (microsoft) {
    const { code, rule } = microsoft;
    return { kind: rule.kind, code: oauthError, providerCode: `AADSTS${code}`, reason: reasonOf(rule, context), ...statusPart };
  }
  const providerCode = found.codes.length > 0 ? { providerCode: `AADSTS${found.codes.at(-1)}` } : {};
  const rule = Object.hasOwn(OAUTH_ERRORS, oauthError) ? OAUTH_ERRORS[oauthError] : undefined;
  if (rule) return { kind: rule.kind, code: oauthError, reason: reasonOf(rule, context), ...providerCode, ...statusPart };
  if (isServerTrouble(status)) {
    return {
      kind: 'transient',
      code: oauthError,
      reason: FALLBACK_REASONS.serverTrouble(status),
      ...providerCode,
      ...statusPart,
    };
  }
  return { kind: 'config', code: oauthError, reason: FALLBACK_REASONS.unknownError, ...providerCode, ...statusPart };
}

/** The short form for the status row and logs, e.g. `invalid_grant AADSTS700082`. */
export function providerErrorLabel(failure: TokenEndpointFailure): string {
  return [failure.code, failure.providerCode].filter(Boolean).join(' ');
}

function reasonOf(rule: Rule, context: ClassifyContext): string {
  return typeof rule.reason === 'function' ? rule.reason(context) : rule.reason;
}

/** The AADSTS code that decides: the first one we know (70002 "error validating credentials" is generic), else none. */
function decidingMicrosoftCode(codes: number[]): { code: number; rule: Rule } | undefined {
  for (const code of codes) {
    const rule = Object.hasOwn(MICROSOFT_CODES, code) ? MICROSOFT_CODES[code] : undefined;
    if (rule) return { code, rule };
  }
  return undefined;
}
