/**
 * The sender fields of a message's header, checked at the final dot, in order: exactly one From; no display
 * name that is itself an address (`"ceo@evil.test" <allowed@contoso.com>` shows the reader another sender);
 * every From and Sender address in the device's allowed list and allowed by its account.
 */
import addressparser from 'nodemailer/lib/addressparser';
import { decodeEncodedWords, fieldValue, headerFields, senderHeaders, type HeaderField } from '../shared/message/mimeHeaders';
import type { Device } from './config';
import { REPLIES, type Reply } from './replies';

/** The account's verdict on one sender address (`field` names it in the reply). */
export type AccountCheck = (address: string, field: string) => Reply | undefined;

/** Something@something.something, anywhere in a display name. */
const ADDRESS_LIKE = /[^\s@<>"]+@[^\s@<>"]+\.[^\s@<>"]+/u;

export function checkSenderHeaders(header: Buffer, device: Device, accountCheck?: AccountCheck): Reply | undefined {
  const allowed = device.allowedFrom;
  const fields = headerFields(header);
  const senders = senderHeaders(header, fields);
  if (senders.fromFields > 1) return REPLIES.manyFromFields('From', senders.fromFields);
  if (senders.from.length === 0) return REPLIES.noFrom(allowed);
  if (senders.senderFields > 1) return REPLIES.manyFromFields('Sender', senders.senderFields);
  for (const name of ['from', 'sender'] as const) {
    const spoofed = addressLikeName(header, fields, name);
    if (spoofed !== undefined) return REPLIES.displayNameAddress(name === 'from' ? 'From' : 'Sender', spoofed);
  }
  const addresses = [
    ...senders.from.map((address) => ({ field: 'From', address })),
    ...(senders.sender ?? []).map((address) => ({ field: 'Sender', address })),
  ];
  for (const { field, address } of addresses)
    if (!allowed.includes(address)) return REPLIES.senderNotAllowed(field, address, allowed);
  for (const { field, address } of addresses) {
    const refusal = accountCheck?.(address, field);
    if (refusal) return refusal;
  }
  return undefined;
}

function addressLikeName(header: Buffer, fields: readonly HeaderField[], name: string): string | undefined {
  for (const field of fields) {
    if (field.name !== name) continue;
    for (const entry of addressparser(fieldValue(header, field), { flatten: true }))
      if (entry.name && ADDRESS_LIKE.test(decodeEncodedWords(entry.name))) return decodeEncodedWords(entry.name);
  }
  return undefined;
}
