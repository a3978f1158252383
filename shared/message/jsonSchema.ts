import { z } from 'zod';
import { mailMessageSchema } from './messageSchema';

/**
 * The JSON Schema of queue message v1, generated from the zod schema, for producers in other languages.
 * Checks that need code (no CR/LF in header fields, at least one recipient) are described in the text.
 */
export function mailMessageJsonSchema(): Record<string, unknown> {
  const schema = z.toJSONSchema(mailMessageSchema, { io: 'input', unrepresentable: 'any' }) as Record<string, unknown>;
  return {
    $schema: 'https://json-schema.org/draft/2020-12/schema',
    $id: 'https://github.com/oauth-outbox/oauth-outbox/shared/message/mail-message.v1.schema.json',
    title: 'oauth-outbox queue message, version 1',
    description:
      'Put on the mail-outbox queue as base64-encoded UTF-8 JSON. Unknown fields are refused. At least one recipient in to, cc or bcc. ' +
      'No CR or LF in subject, addresses, header values or file names. Attachments: inline (contentBase64) or by blob reference ("mail-attachments/<path>"). ' +
      'Or, instead of from/to/cc/bcc/replyTo/subject/text/html/headers/attachments: mime = { blob: "mail-mime/<path>", envelope: { from, to[] } }, ' +
      'a finished MIME message sent as it is to the envelope recipients (a Bcc header is removed; From and Sender must be allowed for the account).',
    ...Object.fromEntries(Object.entries(schema).filter(([key]) => key !== '$schema')),
  };
}
