import { domainToASCII } from 'node:url';
import { z } from 'zod';

const asciiEmail = z.email();
/** zod's own pattern for addresses with non-ASCII characters; it does not ask for a dot in the domain. */
const unicodeEmail = z.email({ pattern: z.regexes.unicodeEmail });

/**
 * An address we can send to: ASCII (`a@example.com`), with an internationalized domain (`a@bücher.de`, sent as
 * `a@xn--bcher-kva.de`), or with a non-ASCII local part (`jürgen@bücher.de`, which needs a server that offers SMTPUTF8).
 */
export function isMailAddress(value: string): boolean {
  const at = value.lastIndexOf('@');
  if (at < 1) return false;
  const local = value.slice(0, at);
  if (!isHostName(domainToASCII(value.slice(at + 1)))) return false;
  // The local part is checked by zod's patterns, with a domain both accept.
  return isAscii(local)
    ? asciiEmail.safeParse(`${local}@example.com`).success
    : unicodeEmail.safeParse(`${local}@example.com`).success;
}

/** Dotted labels of letters, digits and inner dashes, with a top-level domain of letters or punycode (`xn--`). */
function isHostName(domain: string): boolean {
  const labels = domain.split('.');
  return (
    domain.length <= 253 &&
    labels.length >= 2 &&
    labels.every((label) => /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/i.test(label)) &&
    /^(?:[a-z]{2,}|xn--[a-z0-9-]+)$/i.test(labels.at(-1)!)
  );
}

/**
 * The form for the SMTP envelope: the domain in punycode when the local part is ASCII, so any server takes it;
 * a non-ASCII local part stays UTF-8 (nodemailer then asks for SMTPUTF8, and a server without it refuses the address).
 */
export function envelopeAddress(address: string): string {
  const at = address.lastIndexOf('@');
  if (at < 1) return address;
  const local = address.slice(0, at);
  if (!isAscii(local)) return address;
  const domain = domainToASCII(address.slice(at + 1));
  return domain ? `${local}@${domain}` : address;
}

function isAscii(text: string): boolean {
  return /^[\x20-\x7e]*$/.test(text);
}
