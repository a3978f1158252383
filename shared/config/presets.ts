import type { AccountInput } from './accountSchema';

export type Provider = AccountInput['provider'];

export interface SmtpSettings {
  host: string;
  port: number;
  security: 'starttls' | 'tls' | 'plain';
  caFile?: string;
}

/**
 * How a provider treats the refresh token on each refresh: `none` keeps it (Google usually returns none);
 * `reusable` returns a new one while the previous one keeps working (Microsoft: 90 days, sliding), so saving it
 * once a day is enough; `revoking` returns a new one and kills the previous one at once, so it must be saved
 * before anything else happens.
 */
export const REFRESH_TOKEN_ROTATIONS = ['none', 'reusable', 'revoking'] as const;
export type RefreshTokenRotation = (typeof REFRESH_TOKEN_ROTATIONS)[number];

export interface ProviderPreset {
  smtp: SmtpSettings;
  /** Discovery issuer; `{tenant}` is replaced by the account's tenantId. */
  issuer: string;
  delegatedScopes: string[];
  appOnlyScopes?: string[];
  /** Extra authorization request parameters. */
  authParams: Record<string, string>;
  rateLimit: { messagesPerMinute: number; concurrentConnections: number; recipientsPerDay?: number };
  maxRecipientsPerMessage: number;
  maxMessageBytes: number;
  /** For app-only tokens: what the decoded token must carry before we open an SMTP connection. */
  appOnlyToken?: { audience: string; role: string };
  /** Microsoft Graph sendMail, the second transport (Microsoft only). */
  graph?: GraphPreset;
  refreshTokenRotation: RefreshTokenRotation;
}

export interface GraphPreset {
  baseUrl: string;
  /** The token audience Graph accepts; Entra also writes Graph's application id there. */
  audience: string;
  audienceIds: string[];
  /** Delegated: asked for at sign-in and in its own token request, never together with the SMTP scope. */
  delegatedScope: string;
  /** App-only: the application permission Mail.Send, limited to the sending mailboxes by RBAC for Applications. */
  appOnlyScope: string;
  /** What the token must carry: `scp` (delegated) or `roles` (app-only). */
  permission: string;
  /** Per app and mailbox: 4 requests at once, 10,000 per 10 minutes; Exchange's sending limits still apply. */
  concurrentRequests: number;
  requestsPerTenMinutes: number;
  /** A sendMail request of about 4 MB at most (JSON with inline attachments, or base64 MIME). */
  maxRequestBytes: number;
}

const MB = 1024 * 1024;

export const PRESETS: Record<Provider, ProviderPreset> = {
  microsoft: {
    smtp: { host: 'smtp.office365.com', port: 587, security: 'starttls' },
    issuer: 'https://login.microsoftonline.com/{tenant}/v2.0',
    delegatedScopes: ['https://outlook.office.com/SMTP.Send', 'offline_access', 'openid', 'profile', 'email'],
    appOnlyScopes: ['https://outlook.office365.com/.default'],
    authParams: {},
    // Exchange Online, per mailbox: 30 messages/min, 3 concurrent connections, 10,000 recipients/day.
    rateLimit: { messagesPerMinute: 30, concurrentConnections: 3, recipientsPerDay: 10000 },
    maxRecipientsPerMessage: 500,
    maxMessageBytes: 25 * MB,
    appOnlyToken: { audience: 'https://outlook.office365.com', role: 'SMTP.SendAsApp' },
    graph: {
      baseUrl: 'https://graph.microsoft.com',
      audience: 'https://graph.microsoft.com',
      audienceIds: ['https://graph.microsoft.com', '00000003-0000-0000-c000-000000000000'],
      delegatedScope: 'https://graph.microsoft.com/Mail.Send',
      appOnlyScope: 'https://graph.microsoft.com/.default',
      permission: 'Mail.Send',
      concurrentRequests: 4,
      requestsPerTenMinutes: 10_000,
      maxRequestBytes: 4 * MB,
    },
    refreshTokenRotation: 'reusable',
  },
  google: {
    smtp: { host: 'smtp.gmail.com', port: 465, security: 'tls' },
    issuer: 'https://accounts.google.com',
    delegatedScopes: ['https://mail.google.com/', 'openid', 'email'],
    // Google returns a refresh token only with access_type=offline, and again only with prompt=consent.
    authParams: { access_type: 'offline', prompt: 'consent' },
    rateLimit: { messagesPerMinute: 60, concurrentConnections: 3, recipientsPerDay: 2000 },
    maxRecipientsPerMessage: 100,
    maxMessageBytes: 25 * MB,
    refreshTokenRotation: 'none',
  },
  custom: {
    smtp: { host: 'localhost', port: 587, security: 'starttls' },
    issuer: '',
    delegatedScopes: [],
    authParams: {},
    rateLimit: { messagesPerMinute: 60, concurrentConnections: 3 },
    maxRecipientsPerMessage: 500,
    maxMessageBytes: 25 * MB,
    // Unknown providers: assume the worst, a rotated token that kills the previous one (oauth.refreshTokenRotation).
    refreshTokenRotation: 'revoking',
  },
};
