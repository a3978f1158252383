/**
 * The container image builds from the repository's Dockerfile and its bundle starts. Needs a container builder
 * (a Docker daemon, Podman or Buildah); without one the test is skipped with a notice that says so.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { it } from 'node:test';
import { promisify } from 'node:util';

const run = promisify(execFile);
const root = path.resolve(import.meta.dirname, '..');

/** The first builder that answers, with how to build and run with it. */
async function containerBuilder(): Promise<{ name: string; build: string[]; run?: string[] } | undefined> {
  const works = (command: string, args: string[]) =>
    run(command, args, { timeout: 20_000 }).then(
      () => true,
      () => false,
    );
  if (await works('docker', ['info'])) return { name: 'docker', build: ['docker', 'build'], run: ['docker', 'run', '--rm'] };
  if (await works('podman', ['info'])) return { name: 'podman', build: ['podman', 'build'], run: ['podman', 'run', '--rm'] };
  if (await works('buildah', ['--version'])) return { name: 'buildah', build: ['buildah', 'bud'] };
  return undefined;
}

it('the relay image builds from the Dockerfile and its bundle starts', { timeout: 20 * 60_000 }, async (t) => {
  const builder = await containerBuilder();
  if (!builder) {
    t.diagnostic('NOTICE: no container builder here (no Docker daemon, Podman or Buildah): the image build was not tested');
    return t.skip('no container builder (Docker daemon, Podman or Buildah)');
  }
  const tag = `oauth-outbox-relay:test-${process.pid}`;
  const [command, ...args] = builder.build;
  await run(command!, [...args, '-t', tag, '.'], { cwd: root, maxBuffer: 64 * 1024 * 1024 });
  if (!builder.run) return;
  const [runner, ...runArgs] = builder.run;
  const { stdout } = await run(runner!, [...runArgs, tag, 'node', 'relay.mjs', '--help']);
  assert.match(stdout, /^Usage: npm run relay/m);
  const { stdout: user } = await run(runner!, [...runArgs, '--entrypoint', 'id', tag, '-u']);
  assert.equal(user.trim(), '1000', 'runs as the image user node, not root');
});
