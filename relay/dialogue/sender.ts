/**
 * MAIL FROM's address: one the device may use, then one its account allows and an account that can send now,
 * as the app last published them (relay-senders/allowed-senders.json). The app checks the account again when
 * it sends; here the device hears it in the dialogue instead of a 250 for a message that would then fail.
 */
import { REPLIES } from '../replies';
import { need, type CommandCheck } from './dialogue';

export const senderPresent: CommandCheck = (context) => {
  if (need(context, 'sender') === '') return REPLIES.emptySender(need(context, 'device').allowedFrom);
  return undefined;
};

export const deviceMaySend: CommandCheck = (context) => {
  const device = need(context, 'device');
  const sender = need(context, 'sender');
  if (!device.allowedFrom.includes(sender))
    return REPLIES.senderNotAllowed('Sender address (MAIL FROM)', sender, device.allowedFrom);
  return undefined;
};

export const accountMaySend: CommandCheck = (context) =>
  context.dialogue.senders.refusal(need(context, 'device'), need(context, 'sender'), 'Sender address (MAIL FROM)');

export const accountReady: CommandCheck = (context) => context.dialogue.senders.stateRefusal(need(context, 'device').account);
