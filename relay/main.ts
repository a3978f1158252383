/**
 * `npm run relay` (or `node dist/relay.mjs` in the container image):
 *
 *   (no command)    run the relay with the configuration file named by RELAY_CONFIG
 *   check-config    validate that file (or the one named), check the files it names and, when storage answers,
 *                   the devices' senders against the accounts; print what it configures, then exit
 *   send-test       prove the storage identity's role assignments with one request of each kind
 *   hash-password   read a password (prompt, or one line on stdin) and print its hash for "passwordHash"
 *                   --generate: make up a strong password, print it on stderr and its hash on stdout
 *   unblock         list the addresses with failed logins in the running relay, or lift one's block (or --all)
 *
 * SIGTERM/SIGINT stop gracefully (messages in DATA finish); SIGHUP re-reads the TLS certificate and key;
 * SIGUSR2 lifts every failed-login block.
 */
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import { ConfigError } from '../shared/errors';
import { checkConfig } from './checkConfig';
import { loadRelayConfig, RELAY_CONFIG_SETTING } from './config';
import { hashPassword } from './passwordHash';
import { sendTest } from './sendTest';
import { startRelay } from './startRelay';
import { unblock } from './unblockCommand';

const USAGE = `Usage: npm run relay [-- <command>]

Commands:
  (none)           run the relay; RELAY_CONFIG names its JSON configuration file (see docs/relay.md)
  check-config [file]
                   validate the configuration file (default: RELAY_CONFIG), check that the files it names can
                   be read and, when storage answers, that each device's account allows its senders
  send-test        write and delete a blob, add a queue message, read the allowed senders and write the
                   device report with the configured identity: proves its role assignments
  hash-password    print the hash of a password for a device's "passwordHash"
                   (asks for it, or reads one line from stdin: echo -n 'secret' | npm run relay -- hash-password)
    --generate     make up a strong password instead: the password goes to stderr, the hash to stdout
  unblock [address]
                   list the client addresses with failed logins in the running relay, or lift the block of one
    --all          lift every block (as SIGUSR2 or a restart does)
                   (through the health port, from the relay's own machine: docker exec / kubectl exec in a container)`;

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: { help: { type: 'boolean', short: 'h' }, generate: { type: 'boolean' }, all: { type: 'boolean' } },
  });
  const command = positionals[0] ?? 'run';
  if (values.help) return void console.log(USAGE);
  switch (command) {
    case 'run':
      return run();
    case 'check-config':
      return printConfigCheck(positionals[1] ?? process.env[RELAY_CONFIG_SETTING]);
    case 'send-test':
      return printSendTest();
    case 'hash-password':
      return printHash(Boolean(values.generate));
    case 'unblock':
      return printUnblock(positionals[1], Boolean(values.all));
    default:
      console.error(`Unknown command "${command}".\n\n${USAGE}`);
      process.exitCode = 2;
  }
}

async function run(): Promise<void> {
  const config = loadRelayConfig(process.env);
  const relay = await startRelay({ config });
  let stopping = false;
  const stop = (signal: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    // The grace period is for messages in DATA; a few more seconds for the last writes and the log line.
    const deadline = setTimeout(() => {
      console.error(`${signal}: the relay did not stop within the grace period; exiting.`);
      process.exit(1);
    }, config.shutdownGraceMs + 5_000);
    deadline.unref();
    void relay.close().then(() => process.exit(0));
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  // After fixing a device's password: its address may log in again at once (Windows has no SIGUSR2: restart).
  process.on('SIGUSR2', () => void relay.unblockLogins());
  // A failed reload (a half-written renewal) keeps the certificate in use; the relay logs why.
  process.on('SIGHUP', () => void relay.reloadTls().catch(() => undefined));
}

async function printConfigCheck(file: string | undefined): Promise<void> {
  if (!file)
    throw new ConfigError(
      `Name the configuration file: npm run relay -- check-config relay.json (or set ${RELAY_CONFIG_SETTING}).`,
    );
  const { lines, problems } = await checkConfig(file);
  console.log(lines.join('\n'));
  if (problems.length > 0) {
    console.log(`\n${problems.length} problem(s):\n  ${problems.join('\n  ')}`);
    process.exitCode = 1;
  }
}

async function printSendTest(): Promise<void> {
  const config = loadRelayConfig(process.env);
  const steps = await sendTest(config);
  for (const { step, ok, detail } of steps) console.log(`${ok ? 'ok  ' : 'FAIL'} ${step.padEnd(20)} ${detail}`);
  if (steps.some((s) => !s.ok)) process.exitCode = 1;
}

async function printUnblock(address: string | undefined, all: boolean): Promise<void> {
  const config = loadRelayConfig(process.env);
  const lines = await unblock(config, all ? { kind: 'all' } : address ? { kind: 'one', address } : { kind: 'list' });
  console.log(lines.join('\n'));
}

async function printHash(generate: boolean): Promise<void> {
  let password: string;
  if (generate) {
    password = randomBytes(18).toString('base64url');
    process.stderr.write(`Password: ${password}\n`);
  } else if (process.stdin.isTTY) {
    password = await promptHidden('Password: ');
    const again = await promptHidden('Again: ');
    if (password !== again) throw new ConfigError('The two passwords differ.');
  } else {
    password = (await readStdin()).replace(/\r?\n$/, '');
  }
  if (!password) throw new ConfigError('The password is empty.');
  process.stdout.write(`${await hashPassword(password)}\n`);
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/** Reads a line from the terminal without echoing it. */
function promptHidden(prompt: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const stdin = process.stdin;
    process.stderr.write(prompt);
    stdin.setRawMode(true);
    stdin.resume();
    let text = '';
    const done = (error?: Error) => {
      stdin.setRawMode(false);
      stdin.pause();
      stdin.off('data', onData);
      process.stderr.write('\n');
      if (error) reject(error);
      else resolve(text);
    };
    const onData = (data: Buffer) => {
      for (const char of data.toString('utf8')) {
        if (char === '\r' || char === '\n') return done();
        if (char === '\u0003') return done(new ConfigError('Cancelled.'));
        if (char === '\u007f' || char === '\b') text = [...text].slice(0, -1).join('');
        else if (char >= ' ') text += char;
      }
    };
    stdin.on('data', onData);
  });
}

main().catch((error: unknown) => {
  console.error(error instanceof ConfigError ? `\n${error.message}\n` : error);
  process.exit(1);
});
