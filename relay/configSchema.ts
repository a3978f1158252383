import { z } from 'zod';
import { parseAppInsightsConnection } from './appInsightsConnection';
import { parseIpRange } from './ipRanges';
import { passwordHashProblem } from './passwordHash';

/** The relay configuration as an operator writes it (the JSON file named by RELAY_CONFIG). */

const MB = 1024 * 1024;

/** Exchange Online's default per-mailbox limit; it applies to the encoded message, as received. */
export const DEFAULT_MAX_MESSAGE_BYTES = 35 * MB;
/** Exchange Online allows 500 recipients per message. */
export const DEFAULT_MAX_RECIPIENTS = 500;

const cidr = z.string().superRefine((value, ctx) => {
  try {
    parseIpRange(value);
  } catch (error) {
    ctx.addIssue({ code: 'custom', message: `"${value}" ${(error as Error).message}` });
  }
});

const accountId = z
  .string()
  .regex(/^[a-z0-9](?:[a-z0-9-]{0,38}[a-z0-9])?$/, { error: 'is not an account id (lowercase letters, digits and dashes)' });

/** Internationalized addresses are allowed (SMTPUTF8): only structure and forbidden characters are checked. */
const mailbox = z
  .string()
  .max(320)
  .regex(/^[^\s@<>()[\],;:"\\]+@[^\s@<>()[\],;:"\\]+\.[^\s@<>()[\],;:"\\.]+$/u, { error: 'must be an email address' });

/** 0: any free port (tests, the local stack). */
const port = z.number().int().min(0).max(65535);
const host = z.string().min(1).optional();

const sizeLimit = z
  .number()
  .int()
  .min(1024)
  .max(1024 * MB);
const recipientLimit = z.number().int().min(1).max(10_000);

const credentialSchema = z.discriminatedUnion('type', [
  z
    .object({
      /** A service principal that proves itself with a certificate (PEM file holding the private key and the certificate). */
      type: z.literal('clientCertificate'),
      tenantId: z.string().min(1),
      clientId: z.string().min(1),
      certificateFile: z.string().min(1),
    })
    .strict(),
  z
    .object({
      /** Kubernetes workload identity; the defaults come from AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_FEDERATED_TOKEN_FILE. */
      type: z.literal('workloadIdentity'),
      tenantId: z.string().min(1).optional(),
      clientId: z.string().min(1).optional(),
      tokenFile: z.string().min(1).optional(),
    })
    .strict(),
  z
    .object({
      /** Managed identity of an Azure VM, container app, or Azure Arc-enabled server; clientId for a user-assigned one. */
      type: z.literal('managedIdentity'),
      clientId: z.string().min(1).optional(),
    })
    .strict(),
  z.object({ type: z.literal('default') }).strict(),
]);

const storageCommon = {
  /** Create the container and the queue when they are missing (Azurite; in Azure the deployment creates them). */
  createIfMissing: z.boolean().optional(),
  /** Deadline of one storage request, retries not counted. */
  requestTimeoutSeconds: z.number().int().min(1).max(600).optional(),
};

const storageSchema = z.union([
  z.object({ connectionString: z.string().min(1), ...storageCommon }).strict(),
  z
    .object({
      blobServiceUrl: z.url({ protocol: /^https?$/ }),
      queueServiceUrl: z.url({ protocol: /^https?$/ }),
      credential: credentialSchema,
      ...storageCommon,
    })
    .strict(),
]);

const tlsSchema = z.union([
  z.object({ certFile: z.string().min(1), keyFile: z.string().min(1) }).strict(),
  z.object({ cert: z.string().includes('-----BEGIN'), key: z.string().includes('-----BEGIN') }).strict(),
]);

/** The relay's log lines as traces in Application Insights, next to the app's (the workbook reads both). */
const applicationInsightsSchema = z
  .object({
    /** Default: the environment variable APPLICATIONINSIGHTS_CONNECTION_STRING. */
    connectionString: z
      .string()
      .superRefine((value, ctx) => {
        try {
          parseAppInsightsConnection(value);
        } catch (error) {
          ctx.addIssue({ code: 'custom', message: (error as Error).message });
        }
      })
      .optional(),
    /** `entra` (default): a token from the storage identity; `instrumentationKey`: the key alone (local authentication). */
    authentication: z.enum(['entra', 'instrumentationKey']).optional(),
  })
  .strict();

export const deviceInputSchema = z
  .object({
    /** How the device appears in logs; defaults to the user name. Required for a device without a user name. */
    name: z
      .string()
      .regex(/^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$/, { error: 'letters, digits, ".", "_", "@" and "-", at most 64' })
      .optional(),
    user: z
      .string()
      .min(1)
      .max(256)
      .regex(/^[^\s\x00-\x1f\x7f]+$/, { error: 'must not contain spaces or control characters' })
      .optional(),
    passwordHash: z
      .string()
      .superRefine((value, ctx) => {
        const problem = passwordHashProblem(value);
        if (problem) ctx.addIssue({ code: 'custom', message: problem });
      })
      .optional(),
    /** The account (MAIL_ACCOUNTS id) its messages are sent through. */
    account: accountId,
    /** The From (and MAIL FROM, Sender) addresses this device may use. */
    allowedFrom: z.array(mailbox).min(1, { error: 'list at least one address' }),
    /** Where the device may connect from. Required (and the only credential) for a device without a user name. */
    sourceRanges: z.array(cidr).min(1).optional(),
    maxMessageBytes: sizeLimit.optional(),
    maxRecipients: recipientLimit.optional(),
  })
  .strict();

export const relayConfigInputSchema = z
  .object({
    /** The name in the greeting; it should match the certificate. Default: the machine's host name. */
    hostname: z
      .string()
      .regex(/^[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$/, { error: 'must be a host name' })
      .optional(),
    listeners: z
      .object({
        /** Submission with STARTTLS, usually 587. */
        starttls: z.object({ port, host }).strict().optional(),
        /** Implicit TLS, usually 465. */
        tls: z.object({ port, host }).strict().optional(),
        /** No TLS required, for old devices: connections are accepted only from `allowFrom`. */
        plain: z
          .object({ port, host, allowFrom: z.array(cidr).min(1, { error: 'list the networks allowed to use this port' }) })
          .strict()
          .optional(),
      })
      .strict(),
    tls: tlsSchema.optional(),
    storage: storageSchema,
    /** HTTP health endpoint for container probes (GET /health). */
    health: z.object({ port, host }).strict().optional(),
    limits: z
      .object({
        maxMessageBytes: sizeLimit.optional(),
        maxRecipients: recipientLimit.optional(),
        maxConnections: z.number().int().min(1).max(100_000).optional(),
        idleTimeoutSeconds: z.number().int().min(5).max(3600).optional(),
      })
      .strict()
      .optional(),
    /** Limits per account, for every device of that account (a device's own limits win). */
    accounts: z
      .record(accountId, z.object({ maxMessageBytes: sizeLimit.optional(), maxRecipients: recipientLimit.optional() }).strict())
      .optional(),
    /** Failed logins from one address: each is answered more slowly, then the address is refused for a while. */
    loginFailures: z
      .object({
        maxFailures: z.number().int().min(1).max(1000).optional(),
        windowSeconds: z.number().int().min(1).max(86_400).optional(),
        blockSeconds: z.number().int().min(1).max(86_400).optional(),
        delayStepMs: z.number().int().min(0).max(60_000).optional(),
        maxDelayMs: z.number().int().min(0).max(60_000).optional(),
      })
      .strict()
      .optional(),
    /** On SIGTERM: how long messages already in DATA may take to finish. */
    shutdownGraceSeconds: z.number().int().min(0).max(3600).optional(),
    applicationInsights: applicationInsightsSchema.optional(),
    devices: z.array(deviceInputSchema).min(1, { error: 'configure at least one device' }),
  })
  .strict();

export type RelayConfigInput = z.input<typeof relayConfigInputSchema>;
export type DeviceInput = z.infer<typeof deviceInputSchema>;
export type StorageInput = z.infer<typeof storageSchema>;
export type CredentialInput = z.infer<typeof credentialSchema>;
export type ApplicationInsightsInput = z.infer<typeof applicationInsightsSchema>;
