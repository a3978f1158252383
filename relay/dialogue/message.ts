/**
 * DATA: the device is known again (a client may skip MAIL FROM's checks only by not sending), then
 * receiveMessage.ts reads the message to its end, checks its header and writes it to storage; the reply is
 * 250 only after both writes. Each outcome goes into the session, the device's activity and one log line.
 */
import type { Readable } from 'node:stream';
import type { SMTPServerDataStream, SMTPServerSession } from 'smtp-server';
import type { Device } from '../config';
import { receiveMessage, type Outcome } from '../receiveMessage';
import { replyError } from '../replies';
import { deviceKnown } from './device';
import { refuse, type CommandContext, type Dialogue } from './dialogue';

export function receiveData(
  dialogue: Dialogue,
  stream: SMTPServerDataStream,
  session: SMTPServerSession,
  callback: (error?: Error | null, message?: string) => void,
): void {
  const context: CommandContext = { session, dialogue };
  const unknown = deviceKnown(context);
  if (unknown || !context.device) {
    stream.resume();
    return refuse(dialogue, session, callback, unknown!);
  }
  const device = context.device;
  const state = dialogue.sessions.get(session.id);
  if (state) state.inData = true;
  const envelope = {
    from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
    to: session.envelope.rcptTo.map((r) => r.address),
  };
  const started = performance.now();
  const accountCheck = (address: string, field: string) => dialogue.senders.refusal(device, address, field);
  void receiveMessage(stream as Readable, { device, envelope, store: dialogue.store, accountCheck }).then((outcome) => {
    if (state) {
      state.inData = false;
      state[outcome.kind]++;
    }
    logMessage(dialogue, session, device, envelope, outcome, performance.now() - started);
    switch (outcome.kind) {
      case 'queued':
        dialogue.storageHealth.ok('message writes');
        dialogue.activity.queued(device, outcome.id);
        return callback(null, outcome.reply);
      case 'lost':
        return callback(new Error('connection lost'));
      case 'deferred':
        dialogue.storageHealth.failed('message writes', outcome.error);
        dialogue.activity.refused(device, outcome.reply, session.remoteAddress);
        return callback(replyError(outcome.reply));
      case 'refused':
        dialogue.activity.refused(device, outcome.reply, session.remoteAddress);
        return callback(replyError(outcome.reply));
    }
  });
}

function logMessage(
  dialogue: Dialogue,
  session: SMTPServerSession,
  device: Device,
  envelope: { from: string; to: string[] },
  outcome: Outcome,
  ms: number,
): void {
  const { log } = dialogue;
  const fields = {
    session: session.id,
    device: device.name,
    account: device.account,
    envelopeFrom: envelope.from,
    recipients: envelope.to.length,
    bytes: outcome.bytes,
    outcome: outcome.kind,
    ms: Math.round(ms),
  };
  if (outcome.kind === 'queued')
    log.info('relay.message', {
      ...fields,
      id: outcome.id,
      blob: outcome.blob,
      storeMs: Math.round(outcome.storeMs),
      reply: `250 ${outcome.reply}`,
    });
  else if (outcome.kind === 'lost') log.warn('relay.message', { ...fields, error: outcome.error });
  else
    log[outcome.kind === 'deferred' ? 'error' : 'info']('relay.message', {
      ...fields,
      reason: outcome.reply.reason,
      reply: `${outcome.reply.responseCode} ${outcome.reply.message}`,
      ...(outcome.kind === 'deferred' ? { id: outcome.id, error: outcome.error } : {}),
    });
}
