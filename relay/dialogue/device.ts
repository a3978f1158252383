import { REPLIES } from '../replies';
import type { CommandCheck } from './dialogue';

/**
 * Who sends: the device that logged in, or a device without a user name recognized by the client's address.
 * Without one, 530; on a connection that never started TLS the reply says to start it before logging in.
 */
export const deviceKnown: CommandCheck = (context) => {
  const { session, dialogue } = context;
  const device =
    typeof session.user === 'string'
      ? dialogue.registry.byDeviceName(session.user)
      : dialogue.registry.byRemoteAddress(session.remoteAddress);
  if (!device) return REPLIES.authRequired(Boolean(session.secure));
  context.device = device;
  const state = dialogue.sessions.get(session.id);
  if (state) state.device = device.name;
  return undefined;
};
