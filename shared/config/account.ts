import type { ClientAuth } from './accountSchema';
import type { Provider } from './presets';
import type { RefreshTokenRotation, SmtpSettings } from './presets';

/** A fully resolved account: what the rest of the code works with. */
export interface Account {
  id: string;
  displayName: string;
  provider: Provider;
  isDefault: boolean;
  flow: 'authorization_code' | 'client_credentials';
  tenantId?: string;
  clientId: string;
  clientAuth: ClientAuth;
  /** The authenticating identity: XOAUTH2 `user=` and the mailbox that must sign in. */
  user: string;
  /** Default From. */
  from: string;
  /** Lower-cased addresses that may appear in From. */
  allowedFrom: string[];
  defaults: { replyTo?: string; headers: Record<string, string> };
  smtp: SmtpSettings;
  oauth: {
    issuer: string;
    scopes: string[];
    authParams: Record<string, string>;
    /** App-only tokens must carry this audience and role (Microsoft SMTP.SendAsApp). */
    appOnlyToken?: { audience: string; role: string };
    /** When a rotated refresh token must be written to the secret store (see REFRESH_TOKEN_ROTATIONS). */
    refreshTokenRotation: RefreshTokenRotation;
  };
  limits: {
    messagesPerMinute: number;
    concurrentConnections: number;
    recipientsPerDay?: number;
    maxRecipientsPerMessage: number;
    maxMessageBytes: number;
  };
  alerts: string[];
  tokenMinLifetimeSeconds: number;
}
