/**
 * The ways to run the relay stay runnable: the bundle the image ships works without node_modules, the
 * Dockerfile and the systemd unit start it with the options the benchmark measures, the unit passes
 * `systemd-analyze verify`, and the example configuration of docs/relay.md is valid.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { copyFile, mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { buildRelay, RELAY_RUNTIME } from '../relay/build.mjs';
import { loadRelayConfig } from '../relay/config';
import { verifyPassword } from '../relay/passwordHash';

const run = promisify(execFile);
const root = path.resolve(import.meta.dirname, '..');
const read = (file: string) => readFile(path.join(root, file), 'utf8');

describe('relay packaging', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'relay-bundle-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('the bundle runs on its own, without node_modules', async () => {
    const bundle = path.join(dir, 'relay.mjs');
    const bytes = await buildRelay(bundle);
    assert.ok(bytes > 0 && bytes < 4 * 1024 * 1024, `bundle of ${bytes} bytes`);
    await copyFile(path.join(root, 'relay/relay.example.json'), path.join(dir, 'relay.json'));
    const env = { ...process.env, RELAY_CONFIG: path.join(dir, 'relay.json'), NODE_OPTIONS: '' };
    // The example names files of a real server: the check says which are missing, and fails.
    const checked = await run(process.execPath, [bundle, 'check-config'], { cwd: dir, env }).then(
      () => assert.fail('check-config passed without the files the example names'),
      (error: { code: number; stdout: string }) => error,
    );
    assert.equal(checked.code, 1);
    assert.match(checked.stdout, /valid\.\n {2}host name {2}relay\.contoso\.com/);
    assert.match(checked.stdout, /tls\.certFile: \/etc\/oauth-outbox-relay\/tls\/fullchain\.pem does not exist/);
    const hashing = run(process.execPath, [bundle, 'hash-password'], { cwd: dir, env });
    hashing.child.stdin!.end('from the bundle\n');
    assert.equal(await verifyPassword('from the bundle', (await hashing).stdout.trim()), true);
  });

  it('the Dockerfile and the systemd unit start the bundle with the options the benchmark measures', async () => {
    const dockerfile = await read('Dockerfile');
    const unit = await read('relay/oauth-outbox-relay.service');
    const options = RELAY_RUNTIME.nodeOptions.join(' ');
    assert.match(
      dockerfile,
      new RegExp(`^CMD \\["node", ${RELAY_RUNTIME.nodeOptions.map((o) => `"${o}"`).join(', ')}, "relay\\.mjs"\\]$`, 'm'),
    );
    assert.match(unit, new RegExp(`^ExecStart=/usr/bin/env node ${options} /opt/oauth-outbox-relay/relay\\.mjs$`, 'm'));
    for (const [name, value] of Object.entries(RELAY_RUNTIME.env)) {
      assert.match(dockerfile, new RegExp(`\\b${name}=${value}\\b`));
      assert.match(unit, new RegExp(`^Environment=${name}=${value}$`, 'm'));
    }
    assert.match(dockerfile, /^RUN node relay\/build\.mjs --outfile=\/out\/relay\.mjs$/m);
    assert.match(unit, /^KillSignal=SIGTERM$/m);
  });

  it('systemd-analyze accepts the unit', async (t) => {
    const available = await run('systemd-analyze', ['--version']).catch(() => undefined);
    if (!available) return t.skip('systemd-analyze is not installed');
    const copy = path.join(dir, 'oauth-outbox-relay.service');
    await copyFile(path.join(root, 'relay/oauth-outbox-relay.service'), copy);
    const { stderr } = await run('systemd-analyze', ['verify', copy]);
    assert.equal(stderr.trim(), '');
  });

  it('the container example matches the Dockerfile: its ports, /config paths and RELAY_CONFIG', async () => {
    const dockerfile = await read('Dockerfile');
    const config = loadRelayConfig({ RELAY_CONFIG: path.join(root, 'relay.container.example.json') });
    const exposed = /^EXPOSE (.+)$/m.exec(dockerfile)?.[1]?.split(/\s+/).map(Number) ?? [];
    const ports = [...config.listeners.map((l) => l.port), config.health?.port];
    assert.deepEqual([...ports].sort(), [...exposed].sort());
    assert.ok(
      ports.every((port) => port !== undefined && port > 1023),
      'ports a user other than root may open',
    );
    assert.match(dockerfile, /RELAY_CONFIG=\/config\/relay\.json/);
    const files = [
      ...(config.tls && 'certFile' in config.tls ? [config.tls.certFile, config.tls.keyFile] : []),
      ...('credential' in config.storage && config.storage.credential.type === 'clientCertificate'
        ? [config.storage.credential.certificateFile]
        : []),
    ];
    assert.ok(files.length >= 3);
    for (const file of files) assert.match(file, /^\/config\//);
    assert.match(dockerfile, new RegExp(`HEALTHCHECK[\\s\\S]*\\|\\| ${config.health?.port}\\)`));
  });

  it('the example configuration is valid', () => {
    const config = loadRelayConfig({ RELAY_CONFIG: path.join(root, 'relay/relay.example.json') });
    assert.deepEqual(
      config.listeners.map((l) => [l.kind, l.port]),
      [
        ['starttls', 587],
        ['tls', 465],
        ['plain', 25],
      ],
    );
  });
});
