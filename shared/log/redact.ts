/**
 * Central redaction: every log line and every error text we render passes through here, so a token, code,
 * PKCE verifier, client secret or XOAUTH2 string cannot leak even when a library puts one in a message.
 */
const SECRET_KEYS =
  /^(access_?token|refresh_?token|id_?token|token|code|code_?verifier|client_?secret|client_?assertion|password|secret|authorization|assertion|xoauth2|value)$/i;

const PATTERNS: Array<[RegExp, string]> = [
  // JWTs (access tokens, id_tokens, client assertions)
  [/\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*/g, '[redacted-jwt]'],
  // Bearer/Basic credentials in headers
  [/\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]{8,}/gi, '$1 [redacted]'],
  // XOAUTH2 SASL strings: base64 of "user=...\x01auth=Bearer ..."
  [/\bdXNlcj[A-Za-z0-9+/=]{16,}/g, '[redacted-xoauth2]'],
  // key=value pairs in URLs, forms and JSON-ish text
  [
    /\b(access_token|refresh_token|id_token|code|code_verifier|client_secret|client_assertion|assertion|password)(["']?\s*[:=]\s*["']?)([^"'&\s,}]+)/gi,
    '$1$2[redacted]',
  ],
  // Microsoft refresh tokens and Google tokens have recognisable prefixes
  [/\b(0\.A[A-Za-z0-9_-]{20,}|1\/\/[A-Za-z0-9_-]{20,}|ya29\.[A-Za-z0-9_-]{10,})/g, '[redacted-token]'],
];

export function redactText(text: string): string {
  let out = text;
  for (const [pattern, replacement] of PATTERNS) out = out.replace(pattern, replacement);
  return out;
}

export function redact(value: unknown, depth = 0): unknown {
  if (typeof value === 'string') return redactText(value);
  if (value === null || typeof value !== 'object' || depth > 6) return value;
  if (value instanceof Error) return { name: value.name, message: redactText(value.message) };
  if (Array.isArray(value)) return value.map((item) => redact(item, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [key, item] of Object.entries(value)) {
    out[key] = SECRET_KEYS.test(key) && item !== undefined && item !== null ? '[redacted]' : redact(item, depth + 1);
  }
  return out;
}
