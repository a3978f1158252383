import type SMTPConnection from 'nodemailer/lib/smtp-connection';

/** The name our login is registered under with nodemailer (it sends `AUTH XOAUTH2` all the same). */
export const XOAUTH2_CHECKED = 'XOAUTH2-CHECKED';

/**
 * The server's EHLO did not list XOAUTH2: the token is not sent. Raised inside nodemailer's login, which keeps
 * this error (and its `offeredAuth`) and adds `code: 'EAUTH'`.
 */
export class Xoauth2NotOffered extends Error {
  constructor(readonly offeredAuth: string[]) {
    super(`The server does not offer AUTH XOAUTH2 (offered: ${offeredAuth.length ? offeredAuth.join(', ') : 'none'})`);
  }
}

/**
 * XOAUTH2 login that sends the token only to a server that advertised XOAUTH2 (after STARTTLS when the account
 * asks for it). nodemailer's own XOAUTH2 login sends it whatever the server offered, and a server that does not
 * know the mechanism answers 504, which would read as a refused token.
 */
export async function xoauth2Login(ctx: SMTPConnection.CustomAuthenticationContext): Promise<void> {
  if (!ctx.authMethods.includes('XOAUTH2')) throw new Xoauth2NotOffered(ctx.authMethods);
  const { user, pass } = ctx.auth.credentials;
  const initial = Buffer.from(`user=${user}\x01auth=Bearer ${pass}\x01\x01`, 'utf8').toString('base64');
  let reply = await ctx.sendCommand(`AUTH XOAUTH2 ${initial}`);
  // Gmail answers a refused token with a 334 carrying the details; an empty line gets the final 5xx.
  if (reply.status === 334) reply = await ctx.sendCommand('');
  if (reply.status !== 235) throw new Error('Invalid login');
}
