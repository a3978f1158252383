import { REPLIES } from '../replies';
import { need, type CommandCheck } from './dialogue';

/** MAIL FROM's SIZE=, when the device announces one: within its limit, before a byte of the message is sent. */
export const declaredSizeFits: CommandCheck = (context) => {
  const limit = need(context, 'device').maxMessageBytes;
  const declared = context.declaredSize;
  if (declared !== undefined && declared > limit) return REPLIES.declaredTooLarge(declared, limit);
  return undefined;
};

/** RCPT TO: at most the device's recipient limit (the same address twice counts once). */
export const recipientWithinLimit: CommandCheck = (context) => {
  const limit = need(context, 'device').maxRecipients;
  const recipient = need(context, 'recipient').toLowerCase();
  const { rcptTo } = context.session.envelope;
  const again = rcptTo.some((r) => r.address.toLowerCase() === recipient);
  if (!again && rcptTo.length >= limit) return REPLIES.tooManyRecipients(limit);
  return undefined;
};
