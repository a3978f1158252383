import type { HttpRequest, HttpResponseInit } from '@azure/functions';
import type { AccountAdmin, AdminResult } from '../accounts/accountAdmin';
import type { DirectoryEntry } from '../accounts/accountDirectory';
import type { Logger } from '../log/logger';
import type { Env } from '../settings';
import { functionKeyOf, withFunctionKey } from '../web/functionKey';
import { html, htmlResponse, page } from '../web/html';
import { bodyKind, readBodyText } from '../web/requestBody';
import { STATUS_PAGE_PATH } from '../web/routes';
import { checkSameOrigin } from '../web/sameOrigin';
import { signedInAdmin } from '../web/signedInAdmin';
import { parseFormChange, parseJsonChange, type FormAction, type ParsedChange } from './accountForm';

const MAX_BODY_BYTES = 64 * 1024;

export interface AccountChangeDeps {
  accountAdmin: AccountAdmin;
  publicBaseUrl: string;
  env: Env;
  log: Logger;
}

/**
 * POST (create), PUT (change, or pause/resume with `{"state": ...}`) and DELETE of `/api/accounts/{id}`, in JSON;
 * the status page's forms POST urlencoded with an `action` field instead (HTML forms cannot PUT or DELETE) and are
 * sent back to the page. Same-origin checked like every admin POST; the actor is the signed-in admin or "function key".
 */
export async function handleAccountChange(
  deps: AccountChangeDeps,
  request: HttpRequest,
  method: 'POST' | 'PUT' | 'DELETE',
): Promise<HttpResponseInit> {
  const kind = bodyKind(request);
  const key = functionKeyOf(request);
  const isForm = method === 'POST' && kind === 'form';
  const refuse = (status: number, error: string, reasons: string[]): HttpResponseInit =>
    isForm ? htmlResponse(status, changeProblemPage(reasons, key)) : json(status, { error, reasons });

  const origin = checkSameOrigin(request.headers, deps.publicBaseUrl);
  if (!origin.ok) return refuse(403, 'cross_origin', [origin.reason]);
  if (method !== 'DELETE' && kind === 'other')
    return refuse(415, 'unsupported_media_type', ['Send JSON (Content-Type: application/json) or the status page form.']);
  const body = await readBodyText(request, MAX_BODY_BYTES);
  if (body.tooLarge) return refuse(413, 'too_large', ['The body is over 64 KB.']);

  const pathId = request.params.id || undefined;
  const action: FormAction = method === 'DELETE' ? 'delete' : method === 'PUT' ? 'update' : 'create';
  let parsed: ParsedChange;
  if (isForm) parsed = parseFormChange(pathId, body.text);
  else if (!pathId) parsed = { ok: false, reasons: ['id: put the account id in the URL (/api/accounts/{id})'] };
  else parsed = parseJsonChange(pathId, action, body.text);
  if (!parsed.ok) return refuse(400, 'invalid_account', parsed.reasons);

  const who = signedInAdmin(request.headers, deps.env) ?? 'function key';
  let result: AdminResult;
  try {
    const admin = deps.accountAdmin;
    result =
      parsed.action === 'create'
        ? await admin.create(parsed.id, parsed.request, who)
        : parsed.action === 'delete'
          ? await admin.delete(parsed.id, who)
          : await admin.update(parsed.id, parsed.request, who);
  } catch (error) {
    deps.log.error('accounts.change_failed', { account: parsed.id, action: parsed.action, error });
    return refuse(500, 'internal_error', ["The change could not be saved. The function's log has the details."]);
  }
  if (!result.ok) return refuse(result.status, result.error, result.reasons);
  deps.log.info('accounts.changed', { account: parsed.id, action: parsed.action, by: who });
  if (isForm) {
    const location = withFunctionKey(STATUS_PAGE_PATH, key, { q: parsed.id, done: parsed.action });
    return { status: 303, headers: { Location: `${location}#account-${parsed.id}`, 'Cache-Control': 'no-store' } };
  }
  return json(result.status, {
    id: parsed.id,
    action: parsed.action,
    ...(result.entry ? { account: entrySummary(result.entry) } : {}),
    ...(result.note ? { note: result.note } : {}),
  });
}

/** What the API answers about a run-time account: its configuration as stored (no secret) and when secrets were set. */
export function entrySummary(entry: DirectoryEntry): Record<string, unknown> {
  return {
    id: entry.account.id,
    source: entry.source,
    state: entry.state,
    ...(entry.row
      ? {
          config: entry.row.config,
          createdAt: entry.row.createdAt,
          createdBy: entry.row.createdBy,
          updatedAt: entry.row.updatedAt,
          updatedBy: entry.row.updatedBy,
          clientSecretSetAt: entry.row.clientSecretSetAt ?? null,
          certificateKeySetAt: entry.row.certificateKeySetAt ?? null,
        }
      : {}),
  };
}

function json(status: number, jsonBody: object): HttpResponseInit {
  return { status, jsonBody, headers: { 'Cache-Control': 'no-store' } };
}

function changeProblemPage(reasons: string[], key: string | undefined) {
  return page({
    title: 'The account was not saved',
    tone: 'fail',
    body: html`<ul class="problems">
        ${reasons.map((reason) => html`<li>${reason}</li>`)}
      </ul>
      <p>Nothing was changed. Go back to correct the form (secrets must be typed again).</p>
      <p><a href="${withFunctionKey(STATUS_PAGE_PATH, key)}">Back to the status page</a></p>`,
  });
}
