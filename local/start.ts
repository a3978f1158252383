/**
 * `npm start`: the whole product on this machine, loopback only. Azurite (queues, tables, blobs), a local
 * OpenID provider standing in for Microsoft and Google, an SMTP server that checks XOAUTH2 tokens against it
 * and keeps every message (mailbox page and .eml files), and the functions served by the local runner.
 * `--no-functions` starts everything but the functions, for `func start`.
 */
import './peers/identity/providerWarnings';
import { randomBytes } from 'node:crypto';
import { readFileSync, rmSync } from 'node:fs';
import { mkdir, open, readFile, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { ConfigError } from '../shared/errors';
import { callbackUrl } from '../shared/web/routes';
import { closeApp, getApp, type App } from '../shared/app';
import { DEFAULT_REFRESH_SCHEDULE, readSetting } from '../shared/settings';
import { FileSecretStore } from '../shared/storage/fileSecretStore';
import { ensureTestCaFiles } from '../test/support/testCa.mjs';
import { devConnectionString, startAzurite } from './peers/azurite';
import { loadFunctionDefinitions, type FunctionDefinition } from './host/functionRegistry';
import { readHostJson, routePrefix } from './host/hostSettings';
import { startIdentityProvider, type IdentityProvider } from './peers/identity/identityProvider';
import { DEMO, readLocalConfig, settingOf, type LocalConfig } from './localConfig';
import { startMailboxPage } from './peers/mailboxPage';
import { LOCAL_FUNCTION_KEY, startRunner } from './host/runner';
import { startSmtpSink } from './peers/smtpSink';
import { startGraphStandIn } from './peers/graphStandIn';
import { startLocalRelay } from '../relay/localRelay';

const USAGE = `Usage: npm start [-- --no-functions]

Starts Azurite, a local OpenID provider, a local SMTP server with a mailbox page, and the functions.
  --no-functions   everything but the functions (run them with \`func start\` instead)

Ports: OUTBOX_PORT (7071), IDP_PORT (7080), MAILBOX_PORT (7081), SMTP_PORT (2525), GRAPH_PORT (7082),
       RELAY_PORT (2587, STARTTLS), RELAY_TLS_PORT (2465, SSL/TLS), RELAY_PLAIN_PORT (2526, no TLS, 127.0.0.1 only),
       AZURITE_BLOB_PORT (10000), AZURITE_QUEUE_PORT (10001), AZURITE_TABLE_PORT (10002).
Data:  OUTBOX_DATA_DIR (.local). Your own accounts: MAIL_ACCOUNTS or MAIL_ACCOUNTS_FILE.
Keys:  LOCAL_FUNCTION_KEY: when set, routes that need a function key in Azure need this one (?code= or x-functions-key).`;

type Stop = { name: string; stop: () => Promise<unknown> };

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { 'no-functions': { type: 'boolean' }, help: { type: 'boolean', short: 'h' } } });
  if (values.help) return void console.log(USAGE);
  const withFunctions = !values['no-functions'];

  const config = readLocalConfig();
  const hostJson = readHostJson();
  await mkdir(config.paths.dataDir, { recursive: true, mode: 0o700 });
  // Before the ports: a second stack on other ports would still share Azurite's files and the secrets.
  await lockDataDir(config.paths.dataDir);
  await assertPortsFree(config, withFunctions);
  await mkdir(config.paths.mail, { recursive: true });
  const tls = await ensureTestCaFiles(config.paths.ca);
  const ownAccounts = Boolean(readSetting(process.env, 'MAIL_ACCOUNTS') ?? readSetting(process.env, 'MAIL_ACCOUNTS_FILE'));
  if (!ownAccounts) await writeDemoAccounts(config, tls.caPath);
  configureAppSettings(config);
  // Loads and validates the accounts now, so a bad configuration stops us before anything starts.
  const runtime = getApp();
  const clientSecret = await demoClientSecret(readSetting(process.env, 'LOCAL_SECRETS_FILE') ?? config.paths.secrets);

  const stops: Stop[] = [];
  const stopAll = async () => {
    for (const { name, stop } of stops.reverse()) {
      try {
        await stop();
      } catch (error) {
        console.error(`Stopping ${name} failed:`, error);
      }
    }
    stops.length = 0;
  };
  handleSignals(stopAll);

  try {
    const { ports, host } = config;
    const azurite = await startAzurite({
      location: config.paths.azurite,
      blobPort: ports.blob,
      queuePort: ports.queue,
      tablePort: ports.table,
    });
    stops.push({ name: 'Azurite', stop: azurite.stop });
    await runtime.storage.ensureCreated();
    // What the relay checks senders and account states against; the refresh timer and a new grant write it again.
    await runtime.publishAllowedSenders();

    const idp = await startIdentityProvider({
      port: ports.idp,
      clients: [{ clientId: DEMO.clientId, clientSecret, redirectUris: [callbackUrl(runtime.publicBaseUrl)] }],
      users: [{ id: DEMO.accountId, email: DEMO.user, name: DEMO.name, password: DEMO.password, tenantId: DEMO.tenantId }],
    });
    stops.push({ name: 'the identity provider', stop: idp.stop });

    // Microsoft Graph's sendMail, for accounts with transport graph or auto; it keeps mail where the SMTP server does.
    const graph = await startGraphStandIn({
      host,
      port: ports.graph,
      verifyAccessToken: (token) => idp.verifyAccessToken(token),
      mailDir: config.paths.mail,
    });
    stops.push({ name: 'the Graph stand-in', stop: graph.stop });

    const [key, cert] = await Promise.all([readFile(tls.serverKeyPath, 'utf8'), readFile(tls.serverCertPath, 'utf8')]);
    const sink = await startSmtpSink({
      host,
      port: ports.smtp,
      security: 'starttls',
      key,
      cert,
      mailDir: config.paths.mail,
      name: 'smtp.outbox.localhost',
      verifyToken: (user, token) => tokenBelongsTo(idp, user, token),
    });
    stops.push({ name: 'the SMTP server', stop: sink.stop });

    // The relay for devices, with a demo device for the demo account (your own accounts bring their own devices).
    let relayLine: string | undefined;
    if (!ownAccounts) {
      const relay = await startLocalRelay({
        host,
        port: ports.relay,
        tlsPort: ports.relayTls,
        plainPort: ports.relayPlain,
        caFile: tls.caPath,
        connectionString: readSetting(process.env, 'MailStorage') ?? '',
        certFile: tls.serverCertPath,
        keyFile: tls.serverKeyPath,
        account: DEMO.accountId,
        from: DEMO.user,
      });
      stops.push({ name: 'the SMTP relay', stop: relay.close });
      relayLine = relay.bannerLine;
    }

    const mailbox = await startMailboxPage({ host, port: ports.mailbox, mailDir: config.paths.mail });
    stops.push({ name: 'the mailbox page', stop: mailbox.stop });

    // Loaded even for func start: the banner names their URLs.
    const definitions = await loadFunctionDefinitions();
    let summary: string[] = [];
    if (withFunctions) {
      const runner = await startRunner({ host, port: ports.outbox, env: process.env, definitions, hostJson });
      const stopFunctions = async () => {
        await runner.stop();
        await closeApp(runtime);
      };
      stops.push({ name: 'the functions', stop: stopFunctions });
      summary = runner.summary;
    }
    printBanner(config, runtime, { withFunctions, definitions, summary, ownAccounts, prefix: routePrefix(hostJson), relayLine });
  } catch (error) {
    await stopAll();
    throw error;
  }
}

/** What `getApp()` and the functions read, as app settings would provide them in Azure. */
function configureAppSettings(config: LocalConfig): void {
  const storage = devConnectionString(config.host, {
    blobPort: config.ports.blob,
    queuePort: config.ports.queue,
    tablePort: config.ports.table,
  });
  process.env.MailStorage = storage;
  process.env.AzureWebJobsStorage = storage;
  process.env.LOCAL_SECRETS_FILE ||= config.paths.secrets;
  if (!process.env.MAIL_ACCOUNTS?.trim()) process.env.MAIL_ACCOUNTS_FILE ||= config.paths.accounts;
  process.env.PUBLIC_BASE_URL ||= config.outboxUrl;
  process.env.REFRESH_SCHEDULE ||= DEFAULT_REFRESH_SCHEDULE;
}

/** Rewritten at every start: it holds this run's ports. Your own file goes in MAIL_ACCOUNTS_FILE. */
async function writeDemoAccounts(config: LocalConfig, caFile: string): Promise<void> {
  const accounts = [
    {
      id: DEMO.accountId,
      displayName: 'Local demo mailbox',
      provider: 'custom',
      default: true,
      clientId: DEMO.clientId,
      clientAuth: { type: 'secret', secretName: DEMO.clientSecretName },
      user: DEMO.user,
      oauth: { issuer: config.idpUrl, scopes: ['openid', 'email', 'profile', 'offline_access', DEMO.mailScope] },
      smtp: { host: config.host, port: config.ports.smtp, security: 'starttls', caFile },
    },
    {
      // The same mailbox as a Microsoft account that sends through Microsoft Graph (the local stand-in): its sign-in
      // asks for SMTP.Send and Graph's Mail.Send, and each token is then requested on its own.
      id: DEMO.graphAccountId,
      displayName: 'Local demo mailbox, through Microsoft Graph',
      provider: 'microsoft',
      tenantId: DEMO.tenantId,
      clientId: DEMO.clientId,
      clientAuth: { type: 'secret', secretName: DEMO.clientSecretName },
      user: DEMO.user,
      transport: 'graph',
      oauth: { issuer: config.idpUrl },
      graph: { baseUrl: config.graphUrl },
      smtp: { host: config.host, port: config.ports.smtp, security: 'starttls', caFile },
    },
  ];
  await writeFile(config.paths.accounts, `${JSON.stringify(accounts, null, 2)}\n`);
}

/** Generated once and kept in the local secret store, where the app reads it as it would from Key Vault. */
async function demoClientSecret(secretsFile: string): Promise<string> {
  const store = new FileSecretStore(path.resolve(secretsFile));
  const existing = await store.get(DEMO.clientSecretName);
  if (existing) return existing;
  const secret = randomBytes(24).toString('base64url');
  await store.set(DEMO.clientSecretName, secret);
  return secret;
}

/** The SMTP server's XOAUTH2 check: a live token of the local provider, owned by the user it names, for sending mail. */
async function tokenBelongsTo(idp: IdentityProvider, user: string, token: string): Promise<boolean> {
  const verified = await idp.verifyAccessToken(token);
  if (!verified?.email || verified.email.toLowerCase() !== user.toLowerCase()) return false;
  return verified.scope.split(' ').includes(DEMO.mailScope);
}

interface LockHolder {
  pid: number;
  startedAt: string;
}

/**
 * One `npm start` per data folder: Azurite's files, the secrets and the mail folder are not made for two. The
 * lock file names the process that holds it; a lock whose process is gone (a crash, a kill -9) is taken over.
 * It is removed when this process exits, however it exits.
 */
async function lockDataDir(dataDir: string): Promise<void> {
  const file = path.join(dataDir, 'npm-start.lock');
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const handle = await open(file, 'wx', 0o600);
      const holder: LockHolder = { pid: process.pid, startedAt: new Date().toISOString() };
      await handle.writeFile(`${JSON.stringify(holder)}\n`);
      await handle.close();
      process.on('exit', () => {
        if (readHolder(file)?.pid === process.pid) rmSync(file, { force: true });
      });
      return;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    const holder = readHolder(file);
    if (holder && holder.pid !== process.pid && isRunning(holder.pid)) {
      const shown = path.relative(process.cwd(), dataDir).startsWith('..') ? dataDir : path.relative(process.cwd(), dataDir);
      throw new ConfigError(
        `The local stack is already running on ${shown}/ (npm start, process ${holder.pid}, since ${holder.startedAt}). ` +
          'Use that one, or stop it with Ctrl-C first. To run a second stack, give it its own data folder and ports, ' +
          'e.g. OUTBOX_DATA_DIR=.local-2 OUTBOX_PORT=8071 IDP_PORT=8080 MAILBOX_PORT=8081 SMTP_PORT=2526 GRAPH_PORT=8082 ' +
          'AZURITE_BLOB_PORT=11000 AZURITE_QUEUE_PORT=11001 AZURITE_TABLE_PORT=11002 npm start.',
      );
    }
    await rm(file, { force: true }); // left by a stack that did not exit cleanly
  }
  throw new ConfigError(`Could not take the lock ${file}: another npm start is starting at the same moment.`);
}

function readHolder(file: string): LockHolder | undefined {
  try {
    const holder = JSON.parse(readFileSync(file, 'utf8')) as Partial<LockHolder>;
    return typeof holder.pid === 'number' ? { pid: holder.pid, startedAt: String(holder.startedAt ?? '?') } : undefined;
  } catch {
    return undefined;
  }
}

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function assertPortsFree(config: LocalConfig, withFunctions: boolean): Promise<void> {
  for (const [name, port] of Object.entries(config.ports)) {
    if (name === 'outbox' && !withFunctions) continue;
    const free = await new Promise<boolean>((resolve) => {
      const probe = net.createServer();
      probe.once('error', () => resolve(false));
      probe.listen(port, config.host, () => probe.close(() => resolve(true)));
    });
    if (!free)
      throw new ConfigError(
        `Port ${port} (${settingOf(name)}) is in use. Is the local stack already running? Set ${settingOf(name)} to use another port.`,
      );
  }
}

function printBanner(
  config: LocalConfig,
  runtime: App,
  run: {
    withFunctions: boolean;
    definitions: FunctionDefinition[];
    summary: string[];
    ownAccounts: boolean;
    prefix: string;
    relayLine?: string | undefined;
  },
): void {
  const { ports, paths } = config;
  // With a local key the pages that need one are printed with it, as the Azure portal's "Get function URL" does.
  const functionKey = run.withFunctions ? readSetting(process.env, LOCAL_FUNCTION_KEY) : undefined;
  const withKey = (url: string | undefined) =>
    url && functionKey ? `${url}?${new URLSearchParams({ code: functionKey }).toString()}` : url;
  const shown = (p: string) => (path.relative(process.cwd(), p).startsWith('..') ? p : path.relative(process.cwd(), p) || '.');
  const lines = [
    '',
    `oauth-outbox local stack (data in ${shown(paths.dataDir)}/)`,
    `  Azurite             http://${config.host}:${ports.blob} (blobs), :${ports.queue} (queues), :${ports.table} (tables)`,
    `  Identity provider   ${config.idpUrl} (sign-ins live in memory: after a restart, authorize again)`,
    `  SMTP server         ${config.host}:${ports.smtp} (STARTTLS, XOAUTH2 only; mail kept in ${shown(paths.mail)}/)`,
    `  Microsoft Graph     ${config.graphUrl}/v1.0/users/{user}/sendMail (stand-in; mail kept in the same folder)`,
    ...(run.relayLine ? [run.relayLine] : []),
    `  Mailbox             ${config.mailboxUrl}/`,
  ];
  if (run.withFunctions) {
    lines.push(
      `  Functions           ${config.outboxUrl}/${run.prefix} ` +
        (functionKey
          ? `(function keys checked: ${LOCAL_FUNCTION_KEY} is the key, as ?code= or x-functions-key)`
          : `(function keys are not checked locally, as with func start; set ${LOCAL_FUNCTION_KEY} to check them)`),
    );
    for (const line of run.summary) lines.push(`    ${line}`);
  } else {
    lines.push('  Functions           not started (--no-functions): run `npm run build && func start` now');
  }
  const account = runtime.accounts.find((a) => a.isDefault) ?? runtime.accounts[0];
  const adminUrl = withKey(functionUrl(runtime, run, 'admin', {}));
  if (!account) {
    lines.push(
      '',
      'Ready, but no account is configured: your MAIL_ACCOUNTS or MAIL_ACCOUNTS_FILE is an empty list, so nothing can be sent.',
      '  Add an account (docs/provider-microsoft.md, docs/provider-google.md), or unset both for the demo mailbox, and start again.',
      ...(adminUrl ? [`  Admin page: ${adminUrl}`] : []),
      'Ctrl-C stops everything.',
      '',
    );
    return void console.log(lines.join('\n'));
  }
  const authorizeUrl = withKey(functionUrl(runtime, run, 'authorize', { id: account.id }));
  lines.push('', 'Ready. Next:');
  if (adminUrl) lines.push(`  1. Admin page: ${adminUrl}  (press Authorize for "${account.id}")`);
  else if (authorizeUrl) lines.push(`  1. Authorize the mailbox: ${authorizeUrl}`);
  if (run.ownAccounts) lines.push('  2. Sign in with your provider (your own accounts are configured).');
  else
    lines.push(
      `  2. Sign in as ${DEMO.user} / ${DEMO.password} and allow access. Authorize "${DEMO.graphAccountId}" too: it sends through Microsoft Graph.`,
    );
  lines.push(
    '  3. Then: npm run enqueue -- --to someone@example.com --subject Hello',
    `  4. Read it at ${config.mailboxUrl}/ and see the outcomes with: npm run results`,
    'Ctrl-C stops everything.',
    '',
  );
  console.log(lines.join('\n'));
}

/** The URL of a registered HTTP function, its route parameters filled in. */
function functionUrl(
  runtime: App,
  run: { definitions: FunctionDefinition[]; prefix: string },
  name: string,
  params: Record<string, string>,
): string | undefined {
  const fn = run.definitions.find((d) => d.kind === 'http' && d.name === name);
  if (fn?.kind !== 'http') return undefined;
  const route = fn.route.replace(/\{\*?(\w+)[^}]*\}/g, (_m, param: string) => encodeURIComponent(params[param] ?? ''));
  return `${runtime.publicBaseUrl}/${[run.prefix, route].filter(Boolean).join('/')}`;
}

function handleSignals(stopAll: () => Promise<void>): void {
  let stoppingSince: number | undefined;
  const onSignal = (signal: NodeJS.Signals) => {
    // npm forwards the terminal's Ctrl-C to us, which has already sent it: ignore that echo, not a real second press.
    if (stoppingSince !== undefined) {
      if (Date.now() - stoppingSince < 1_000) return;
      console.error('Asked again: exiting without waiting.');
      process.exit(1);
    }
    stoppingSince = Date.now();
    console.log(`\n${signal}: stopping...`);
    const deadline = setTimeout(() => {
      console.error('Stopping took more than 20 s; exiting now.');
      process.exit(1);
    }, 20_000);
    void stopAll().then(() => {
      clearTimeout(deadline);
      console.log('Stopped.');
      process.exit(0);
    });
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
}

main().catch((error: unknown) => {
  console.error(error instanceof ConfigError ? `\n${error.message}\n` : error);
  process.exit(1);
});
