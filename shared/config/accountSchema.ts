import { z } from 'zod';

/** The account configuration as an operator writes it (MAIL_ACCOUNTS). Presets fill in the rest. */

const email = z.email({ error: 'must be an email address' });
const headerValue = z.string().refine((v) => !/[\r\n]/.test(v), { error: 'must not contain CR or LF' });

export const clientAuthSchema = z.discriminatedUnion('type', [
  z
    .object({
      type: z.literal('secret'),
      /** Name of the Key Vault secret (local: the secrets file) that holds the client secret. */
      secretName: z.string().regex(/^[0-9a-zA-Z-]{1,127}$/, { error: 'letters, digits and dashes, at most 127' }),
    })
    .strict(),
  z
    .object({
      type: z.literal('certificate'),
      /** Key Vault secret holding the PEM private key (PKCS#8) of the certificate registered with the provider. */
      keySecretName: z.string().regex(/^[0-9a-zA-Z-]{1,127}$/),
      /** SHA-1 thumbprint (hex) of that certificate; Microsoft needs it as `x5t` in the assertion header. */
      thumbprint: z.string().regex(/^[0-9a-fA-F]{40}$/, { error: 'must be the 40-character SHA-1 thumbprint' }),
    })
    .strict(),
  z
    .object({
      type: z.literal('managed_identity'),
      /** Client id of the user-assigned identity trusted by the app registration (default: AZURE_CLIENT_ID). */
      identityClientId: z.string().optional(),
      audience: z.string().default('api://AzureADTokenExchange'),
    })
    .strict(),
  z.object({ type: z.literal('none') }).strict(),
]);

export const accountInputSchema = z
  .object({
    id: z
      .string()
      .regex(/^[a-z0-9](?:[a-z0-9-]{0,38}[a-z0-9])?$/, { error: 'lowercase letters, digits and dashes, 1 to 40 characters' }),
    provider: z.enum(['microsoft', 'google', 'custom']),
    displayName: z.string().max(100).optional(),
    default: z.boolean().optional(),
    flow: z.enum(['authorization_code', 'client_credentials']).default('authorization_code'),
    tenantId: z.uuid({ error: 'must be the directory (tenant) ID, a GUID' }).optional(),
    clientId: z.string().min(1),
    /** Default: a client secret in Key Vault named `<id>-client-secret`. */
    clientAuth: clientAuthSchema.optional(),
    /** The identity that authenticates (XOAUTH2 user=) and that must sign in when authorizing. */
    user: email,
    /** The default From address; defaults to `user`. Shared mailboxes: the shared address, with Send As rights. */
    from: email.optional(),
    allowedFrom: z.array(email).optional(),
    defaults: z
      .object({
        replyTo: email.optional(),
        headers: z.record(z.string().regex(/^[A-Za-z0-9-]+$/), headerValue).optional(),
      })
      .strict()
      .optional(),
    smtp: z
      .object({
        host: z.string().min(1).optional(),
        port: z.number().int().min(1).max(65535).optional(),
        security: z.enum(['starttls', 'tls', 'plain']).optional(),
        /** PEM file of an extra CA to trust (local development with a private CA). */
        caFile: z.string().optional(),
      })
      .strict()
      .optional(),
    oauth: z
      .object({
        issuer: z.url().optional(),
        scopes: z.array(z.string().min(1)).min(1).optional(),
        /** Provider "custom" only: how its refresh tokens rotate (default "revoking", the safe assumption). */
        refreshTokenRotation: z.enum(['none', 'reusable', 'revoking']).optional(),
      })
      .strict()
      .optional(),
    rateLimit: z
      .object({
        messagesPerMinute: z.number().int().min(1).max(100000).optional(),
        concurrentConnections: z.number().int().min(1).max(100).optional(),
        recipientsPerDay: z.number().int().min(1).optional(),
      })
      .strict()
      .optional(),
    alerts: z.array(email).optional(),
    /** A token with less life left than this is refreshed before use (Exchange refuses tokens near expiry). */
    tokenMinLifetimeSeconds: z.number().int().min(0).max(3000).optional(),
    /**
     * Microsoft only: how mail leaves. `smtp` (default), `graph` (Microsoft Graph sendMail), or `auto` (SMTP until the
     * server says SMTP AUTH is disabled, then Graph).
     */
    transport: z.enum(['smtp', 'graph', 'auto']).optional(),
    /** Microsoft Graph, JSON messages: keep a copy in Sent Items (default true; MIME messages are always saved). */
    saveToSentItems: z.boolean().optional(),
    graph: z
      .object({
        /** Default https://graph.microsoft.com; http only for a local stand-in on loopback. */
        baseUrl: z.url().optional(),
      })
      .strict()
      .optional(),
  })
  .strict();

/** May be empty: the first deployment comes before any app registration exists; the admin page then says so. */
export const accountsInputSchema = z.array(accountInputSchema);

export type AccountInput = z.infer<typeof accountInputSchema>;
export type ClientAuth = z.infer<typeof clientAuthSchema>;
