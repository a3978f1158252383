/**
 * The app settings the code reads, in one place. infra/ sets each required one; a test checks that.
 * Values come from process.env in Azure and locally, or from an explicit object in tests.
 */
export type Env = Readonly<Record<string, string | undefined>>;

export interface AppSettingDoc {
  name: string;
  required: 'always' | 'azure' | 'optional';
  purpose: string;
}

export const APP_SETTINGS: readonly AppSettingDoc[] = [
  { name: 'MAIL_ACCOUNTS', required: 'azure', purpose: 'JSON array of account configurations' },
  { name: 'MAIL_ACCOUNTS_FILE', required: 'optional', purpose: 'local alternative to MAIL_ACCOUNTS: path of a JSON file' },
  { name: 'MailStorage', required: 'optional', purpose: 'storage connection string (local: Azurite)' },
  { name: 'MailStorage__queueServiceUri', required: 'azure', purpose: 'identity-based storage connection: queues' },
  { name: 'MailStorage__tableServiceUri', required: 'azure', purpose: 'identity-based storage connection: tables' },
  { name: 'MailStorage__blobServiceUri', required: 'azure', purpose: 'identity-based storage connection: blobs' },
  { name: 'MailStorage__credential', required: 'azure', purpose: '"managedidentity" for identity-based connections' },
  { name: 'MailStorage__clientId', required: 'azure', purpose: 'client id of the user-assigned identity used for storage' },
  { name: 'KEY_VAULT_URL', required: 'azure', purpose: 'Key Vault holding tokens and client secrets' },
  {
    name: 'KEY_VAULT_DISABLE_CHALLENGE_VERIFICATION',
    required: 'optional',
    purpose: 'tests only: allow a Key Vault at a host other than *.vault.azure.net',
  },
  { name: 'LOCAL_SECRETS_FILE', required: 'optional', purpose: 'local alternative to Key Vault: a JSON file of secrets' },
  { name: 'AZURE_CLIENT_ID', required: 'azure', purpose: 'client id of the user-assigned managed identity' },
  {
    name: 'PUBLIC_BASE_URL',
    required: 'optional',
    purpose: 'public https base URL; the OAuth redirect URI is built from it (default: https://WEBSITE_HOSTNAME)',
  },
  { name: 'WEBSITE_HOSTNAME', required: 'optional', purpose: 'set by the Functions platform' },
  {
    name: 'ALERT_RECIPIENTS',
    required: 'optional',
    purpose: "comma-separated receivers of account alerts, added to each account's own",
  },
  {
    name: 'REFRESH_SCHEDULE',
    required: 'optional',
    purpose: 'NCRONTAB schedule of the token refresh timer (default hourly: 0 0 * * * *)',
  },
  {
    name: 'REFRESH_SPREAD_MINUTES',
    required: 'optional',
    purpose:
      'the refresh run spreads its accounts over at most this many minutes (default 8, within the 10-minute function timeout; 0: back to back)',
  },
  {
    name: 'REFRESH_CONCURRENCY',
    required: 'optional',
    purpose: 'refreshes the refresh run keeps in flight at once (default 8, 1 to 32); it never starts more than 20 a second',
  },
  {
    name: 'WEBSITE_AUTH_ENABLED',
    required: 'optional',
    purpose: 'set by App Service when Entra sign-in is on; only then is the signed-in admin recorded with a new grant',
  },
  {
    name: 'MESSAGE_EXPIRY_DAYS',
    required: 'optional',
    purpose: 'how long a message may wait unsent before it fails "expired" (default 7 days; fractions allowed)',
  },
  {
    name: 'TEST_EMAIL_WAIT_SECONDS',
    required: 'optional',
    purpose: "how long the test-email route waits for the send path's verdict (default 20, at most 60)",
  },
  {
    name: 'RESULT_EVENTS',
    required: 'optional',
    purpose: 'which outcomes go to queue mail-results: all (default), failures, or none (the ledger keeps every outcome)',
  },
  { name: 'APPLICATIONINSIGHTS_CONNECTION_STRING', required: 'azure', purpose: 'telemetry' },
  { name: 'AzureWebJobsStorage', required: 'optional', purpose: 'host storage, connection string form (local)' },
  { name: 'AzureWebJobsStorage__accountName', required: 'azure', purpose: 'host storage, identity-based' },
  { name: 'AzureWebJobsStorage__credential', required: 'azure', purpose: 'host storage, identity-based' },
  { name: 'AzureWebJobsStorage__clientId', required: 'azure', purpose: 'host storage, identity-based' },
];

export const RESULT_EVENT_CHOICES = ['all', 'failures', 'none'] as const;
export type ResultEvents = (typeof RESULT_EVENT_CHOICES)[number];

export const DEFAULT_REFRESH_SCHEDULE = '0 0 * * * *';

export function readSetting(env: Env, name: string): string | undefined {
  const value = env[name];
  return value === undefined || value.trim() === '' ? undefined : value.trim();
}
