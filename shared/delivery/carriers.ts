import { activeTransport } from '../accounts/accountRules';
import type { AccountStatus } from '../accounts/accountStatus';
import type { Account } from '../config/account';
import { classifyGraphFailure } from '../graph/classifyGraphFailure';
import { GraphFailure } from '../graph/graphFailure';
import { buildGraphRequest, GraphRequestError } from '../graph/graphRequest';
import type { TokenAudience } from '../oauth/graphToken';
import type { AccessTokenRecord } from '../oauth/tokenSet';
import type { SentInfo } from '../smtp/accountSender';
import { classifySmtpFailure, type ReplyClass, type SmtpFailure } from '../smtp/classifyReply';
import type { ComposedMail } from './composeMail';
import type { DeliveryServices } from './deliveryServices';

/**
 * How one composed message reaches the provider: SMTP (XOAUTH2) or Microsoft Graph sendMail. Both hand out a lane
 * (a connection, or a request slot, of the mailbox), send on it with an access token of their audience, and say
 * what a failure means in the same terms (ReplyClass), so that the attempt reads the same for both.
 */
export interface Carrier {
  transport: 'smtp' | 'graph';
  /** Which access token it sends with. */
  audience: TokenAudience;
  acquire(maxWaitMs: number): Promise<CarrierLane | undefined>;
  classify(error: unknown): ReplyClass;
  /** What the server answered, for the ledger's reply column. */
  replyOf(error: unknown): string | undefined;
  /** Why a message found no lane free. */
  busyReason: string;
}

export interface CarrierLane {
  send(token: AccessTokenRecord): Promise<SentInfo>;
  release(): void;
}

/**
 * The carrier for the account's transport now (see activeTransport). A message Graph cannot carry (over its request
 * size, a From it refuses) goes by SMTP when the account may use it (`auto`, not switched to Graph); otherwise the
 * GraphRequestError says what the limit is and the way out.
 */
export async function chooseCarrier(
  services: DeliveryServices,
  account: Account,
  status: AccountStatus | undefined,
  id: string,
  composed: ComposedMail,
): Promise<Carrier> {
  if (activeTransport(account, status) === 'smtp') return smtpCarrier(services, account, composed);
  try {
    return await graphCarrier(services, account, id, composed);
  } catch (error) {
    if (error instanceof GraphRequestError && error.smtpCanCarry && !status?.graphSince)
      return smtpCarrier(services, account, composed);
    throw error;
  }
}

export function smtpCarrier(services: DeliveryServices, account: Account, composed: ComposedMail): Carrier {
  return {
    transport: 'smtp',
    audience: 'smtp',
    acquire: async (maxWaitMs) => {
      const lane = await services.senderFor(account).acquire(maxWaitMs);
      return lane && { send: (token) => lane.send(composed.options, token), release: () => lane.release() };
    },
    classify: (error) => classifySmtpFailure(error as SmtpFailure),
    replyOf: (error) => (error as SmtpFailure).response,
    busyReason: `All ${account.limits.concurrentConnections} SMTP connections of the mailbox are busy.`,
  };
}

/** Builds the Graph request first: a message Graph cannot carry throws GraphRequestError (a MessageError). */
export async function graphCarrier(
  services: DeliveryServices,
  account: Account,
  id: string,
  composed: ComposedMail,
): Promise<Carrier> {
  const request = await buildGraphRequest(account, id, composed);
  return {
    transport: 'graph',
    audience: 'graph',
    acquire: async (maxWaitMs) => {
      const lane = await services.graphSenderFor(account).acquire(maxWaitMs);
      return lane && { send: (token) => lane.send(request, token), release: () => lane.release() };
    },
    classify: (error) =>
      error instanceof GraphFailure
        ? classifyGraphFailure(error)
        : { kind: 'transient', reason: `Unexpected error while sending through Graph: ${(error as Error).message}` },
    replyOf: (error) => (error instanceof GraphFailure ? error.reply : undefined),
    busyReason: `All ${account.graph?.concurrentRequests ?? 4} Graph request slots of the mailbox are busy.`,
  };
}
