import type { z } from 'zod';

/**
 * One sentence per schema problem, each naming the field's path and the rule it broke
 * (`to[0]: is not a valid email address`), for account configuration and queue messages alike.
 * `prefix` names where the value came from (`MAIL_ACCOUNTS`); at most `limit` problems are listed.
 */
export function describeIssues(error: z.ZodError, options: { prefix?: string; limit?: number } = {}): string[] {
  return error.issues.slice(0, options.limit ?? 10).map((issue) => {
    const path = issue.path.map((p) => (typeof p === 'number' ? `[${p}]` : `.${String(p)}`)).join('');
    const field = `${options.prefix ?? ''}${path}`.replace(/^\./, '');
    const message =
      issue.code === 'unrecognized_keys'
        ? `unknown field(s) ${issue.keys.map((k) => `"${k}"`).join(', ')}`
        : issue.code === 'invalid_key'
          ? // zod reports a refused record key as "Invalid key in record"; the key's own check says why.
            issue.issues.map((inner) => inner.message).join('; ')
          : issue.message;
    return field ? `${field}: ${message}` : message;
  });
}
