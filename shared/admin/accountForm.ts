import { accountRequestFrom, type AccountRequest } from '../accounts/accountAdmin';

/** What the status page's account forms ask for. HTML forms send only GET and POST, so `action` says which. */
export type FormAction = 'create' | 'update' | 'pause' | 'resume' | 'delete';
const ACTIONS: readonly FormAction[] = ['create', 'update', 'pause', 'resume', 'delete'];

export type ParsedChange =
  { ok: true; id: string; action: FormAction; request: AccountRequest } | { ok: false; reasons: string[] };

/**
 * A JSON body: the account's fields as in MAIL_ACCOUNTS, plus `clientSecret`, `certificateKey` and `state`.
 * `action` comes from the HTTP method.
 */
export function parseJsonChange(id: string, action: FormAction, text: string): ParsedChange {
  if (action === 'delete') return { ok: true, id, action, request: {} };
  let body: unknown;
  try {
    body = text.trim() === '' ? {} : JSON.parse(text);
  } catch (error) {
    return { ok: false, reasons: [`The body is not valid JSON: ${(error as Error).message}`] };
  }
  if (!body || typeof body !== 'object' || Array.isArray(body))
    return { ok: false, reasons: ['The body must be a JSON object.'] };
  const { request, problems } = accountRequestFrom(body as Record<string, unknown>);
  return problems.length > 0 ? { ok: false, reasons: problems } : { ok: true, id, action, request };
}

/** Text fields of the page's form, each the MAIL_ACCOUNTS field of the same (dotted) name. */
const TEXT_FIELDS: Record<string, string> = {
  displayName: 'displayName',
  provider: 'provider',
  flow: 'flow',
  tenantId: 'tenantId',
  clientId: 'clientId',
  user: 'user',
  from: 'from',
  issuer: 'oauth.issuer',
  smtpHost: 'smtp.host',
  smtpSecurity: 'smtp.security',
};
const LIST_FIELDS: Record<string, string> = { allowedFrom: 'allowedFrom', alerts: 'alerts', scopes: 'oauth.scopes' };

/**
 * The page's form (urlencoded) as an account request. Empty fields are left out (the presets fill them in);
 * "more settings" is JSON merged under the typed fields, for what the form has no field for.
 */
export function parseFormChange(pathId: string | undefined, text: string): ParsedChange {
  const form = new URLSearchParams(text);
  const action = (form.get('action') ?? 'create') as FormAction;
  if (!ACTIONS.includes(action)) return { ok: false, reasons: [`action: must be one of ${ACTIONS.join(', ')}`] };
  const id = (pathId ?? form.get('id') ?? '').trim();
  if (!id) return { ok: false, reasons: ['id: required'] };
  if (action === 'delete') return { ok: true, id, action, request: {} };
  if (action === 'pause' || action === 'resume')
    return { ok: true, id, action, request: { state: action === 'pause' ? 'paused' : 'active' } };

  const reasons: string[] = [];
  let config: Record<string, unknown> = {};
  const more = form.get('more')?.trim();
  if (more) {
    try {
      const parsed: unknown = JSON.parse(more);
      if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) reasons.push('more: must be a JSON object');
      else config = parsed as Record<string, unknown>;
    } catch (error) {
      reasons.push(`more: not valid JSON: ${(error as Error).message}`);
    }
  }
  const value = (name: string) => form.get(name)?.trim() || undefined;
  for (const [name, path] of Object.entries(TEXT_FIELDS)) {
    const text = value(name);
    if (text !== undefined) setPath(config, path, text);
  }
  for (const [name, path] of Object.entries(LIST_FIELDS)) {
    const text = value(name);
    if (text !== undefined) setPath(config, path, text.split(/[\s,;]+/).filter(Boolean));
  }
  const port = value('smtpPort');
  if (port !== undefined) setPath(config, 'smtp.port', /^\d+$/.test(port) ? Number(port) : port);
  if (form.get('default') === 'on') config.default = true;
  const authType = value('clientAuthType');
  // A secret name set in "more settings" (or kept from before) wins over the default name.
  const named = (config.clientAuth ?? {}) as { type?: string; secretName?: string; keySecretName?: string };
  if (authType === 'secret') {
    config.clientAuth = { type: 'secret', secretName: (named.type === 'secret' && named.secretName) || `${id}-client-secret` };
  } else if (authType === 'certificate') {
    config.clientAuth = {
      type: 'certificate',
      keySecretName: (named.type === 'certificate' && named.keySecretName) || `${id}-certificate-key`,
      thumbprint: value('thumbprint') ?? '',
    };
  } else if (authType === 'managed_identity' || authType === 'none') {
    config.clientAuth = { type: authType };
  }
  const { request, problems } = accountRequestFrom({
    ...config,
    ...(value('clientSecret') ? { clientSecret: value('clientSecret') } : {}),
    ...(value('certificateKey') ? { certificateKey: form.get('certificateKey') } : {}),
  });
  reasons.push(...problems);
  if (reasons.length > 0) return { ok: false, reasons };
  return { ok: true, id, action, request };
}

function setPath(target: Record<string, unknown>, path: string, value: unknown): void {
  const parts = path.split('.');
  let node = target;
  for (const part of parts.slice(0, -1)) {
    const next = node[part];
    node = next && typeof next === 'object' && !Array.isArray(next) ? (next as Record<string, unknown>) : (node[part] = {});
  }
  node[parts.at(-1)!] = value;
}
