import type { ClientAuth } from './accountSchema';
import type { GraphPreset, Provider, RefreshTokenRotation, SmtpSettings } from './presets';

export type Transport = 'smtp' | 'graph' | 'auto';

/** Microsoft Graph sendMail for one account: the preset's figures, the base URL and the account's choices. */
export interface GraphSettings extends GraphPreset {
  /** JSON messages only: Graph always saves a MIME message to Sent Items. */
  saveToSentItems: boolean;
}

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
  /** Always `smtp` for Google and custom providers. */
  transport: Transport;
  /** Microsoft accounts only (whatever their transport: `auto` may switch to it). */
  graph?: GraphSettings;
}
