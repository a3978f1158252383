import { app, type HttpRequest, type HttpResponseInit } from '@azure/functions';
import { readBodyText } from '../shared/web/requestBody';
import { checkSameOrigin } from '../shared/web/sameOrigin';
import { checkSubmittedMessage, QUEUE_MESSAGE_LIMIT, TOO_LARGE_HINT } from '../shared/admin/submittedMessage';
import { enqueueMail } from '../shared/message/enqueueMail';
import { getFreshApp } from '../shared/app';

/**
 * For producers without a storage SDK: validates a queue message v1 (strict: unknown fields are refused),
 * checks its account and sender, gives it an id when it has none and enqueues it. 202 `{ id }`, or 4xx
 * `{ error, reasons }`.
 */
export async function messages(request: HttpRequest): Promise<HttpResponseInit> {
  const runtime = await getFreshApp();
  const origin = checkSameOrigin(request.headers, runtime.publicBaseUrl);
  if (!origin.ok) return reply(403, { error: 'cross_origin', reasons: origin.reason });
  const body = await readBodyText(request, QUEUE_MESSAGE_LIMIT);
  if (body.tooLarge) return reply(413, { error: 'too_large', reasons: `The body is over 64 KB. ${TOO_LARGE_HINT}` });
  let checked = checkSubmittedMessage(body.text, runtime.accounts);
  if (!checked.ok && checked.error === 'unknown_account') {
    // Created a moment ago on another instance: ask the table before refusing it.
    await runtime.directory.refresh();
    checked = checkSubmittedMessage(body.text, runtime.accounts);
  }
  if (!checked.ok) return reply(checked.status, { error: checked.error, reasons: checked.reasons });

  const queued = await enqueueMail(runtime.delivery.outbox, checked.message);
  runtime.log.info('mail.accepted', { messageId: queued.id, account: checked.account.id, via: 'http' });
  return reply(202, { id: queued.id });
}

function reply(status: number, jsonBody: Record<string, string>): HttpResponseInit {
  return { status, jsonBody, headers: { 'Cache-Control': 'no-store' } };
}

app.http('messages', { methods: ['POST'], authLevel: 'function', route: 'messages', handler: messages });
