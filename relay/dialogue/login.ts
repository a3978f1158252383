/**
 * AUTH PLAIN / LOGIN, in order: only after TLS (538), not from an address blocked for repeated failures (454),
 * then the user name, the password hash and the device's source ranges (535, answered more slowly each time).
 * A connection counts as one failed attempt however many mechanisms it tries, and the log names the user.
 */
import type { SMTPServerAuthentication, SMTPServerAuthenticationResponse, SMTPServerSession } from 'smtp-server';
import { clientKey } from '../ipRanges';
import { REPLIES, replyError, type Reply } from '../replies';
import { noteRefusal, type Dialogue } from './dialogue';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export function logIn(
  dialogue: Dialogue,
  auth: SMTPServerAuthentication,
  session: SMTPServerSession,
  callback: (error: Error | null | undefined, response?: SMTPServerAuthenticationResponse) => void,
): void {
  const { registry, throttle, log, config } = dialogue;
  const state = dialogue.sessions.get(session.id);
  const fail = (reply: Reply) => {
    if (state) state.lastAuthFailure = reply.reason;
    noteRefusal(dialogue, session, reply);
    callback(replyError(reply));
  };
  if (!session.secure) return fail(REPLIES.tlsRequired());
  if (auth.method !== 'PLAIN' && auth.method !== 'LOGIN') return fail(REPLIES.loginFailed());
  const client = clientKey(session.remoteAddress);
  const blockedMs = throttle.blockedFor(client);
  if (blockedMs > 0) return fail(REPLIES.loginBlocked(blockedMs));
  const user = auth.username ?? '';
  void registry.login(user, auth.password ?? '', session.remoteAddress).then(
    async (result) => {
      if (result.ok) {
        if (state) {
          state.device = result.device.name;
          state.auth = auth.method;
        }
        return callback(null, { user: result.device.name });
      }
      // The second mechanism a client tries on the same connection is the same mistake, not another guess.
      const firstOfConnection = (state?.authFailures ?? 0) === 0;
      const { delayMs, blocked, failures } = firstOfConnection
        ? throttle.fail(client)
        : { delayMs: config.loginFailures.delayStepMs, blocked: false, failures: undefined };
      if (state) {
        state.authFailures++;
        if (result.device) state.device = result.device.name;
      }
      log.info('relay.login_failed', {
        session: session.id,
        remote: session.remoteAddress,
        user: user.slice(0, 256),
        reason: result.reason,
        ...(result.device ? { device: result.device.name } : {}),
        // How long the answer is held back: each failure from one address makes the next one slower.
        delayMs,
      });
      if (blocked)
        log.warn('relay.login_blocked', {
          remote: session.remoteAddress,
          user: user.slice(0, 256),
          failures,
          blockedSeconds: Math.round(config.loginFailures.blockMs / 1000),
        });
      await sleep(delayMs);
      const reply = REPLIES.loginFailed();
      if (state) state.lastAuthFailure = result.reason;
      noteRefusal(dialogue, session, { ...reply, reason: result.reason }, result.device);
      callback(replyError(reply));
    },
    (error: unknown) => {
      log.error('relay.login_error', { session: session.id, error: (error as Error).message });
      fail({ responseCode: 454, reason: 'login_error', message: '4.7.0 Temporary authentication failure; try again' });
    },
  );
}
