import type { SMTPServerSession } from 'smtp-server';
import type { Dialogue } from './dialogue';

/** One `relay.session` line per connection when it closes: who, how, and what became of its messages. */
export function closeSession(dialogue: Dialogue, session: SMTPServerSession): void {
  const state = dialogue.sessions.get(session.id);
  if (!state) return;
  dialogue.sessions.delete(session.id);
  dialogue.log.info('relay.session', {
    session: session.id,
    listener: state.listener,
    remote: state.remote,
    tls: state.tls,
    device: state.device ?? null,
    ...(state.auth ? { auth: state.auth } : {}),
    authFailures: state.authFailures,
    ...(state.lastAuthFailure ? { lastAuthFailure: state.lastAuthFailure } : {}),
    messages: { queued: state.queued, refused: state.refused, deferred: state.deferred, lost: state.lost },
    ...(state.lastRefusal ? { lastRefusal: state.lastRefusal } : {}),
    durationMs: Date.now() - state.startedAt,
  });
}
