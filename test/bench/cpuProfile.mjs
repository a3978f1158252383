// Preload for `bench --profile`, loaded through NODE_OPTIONS=--import=<this file> so that it reaches child
// processes such as Azurite too (--cpu-prof is not allowed in NODE_OPTIONS). Nothing happens until the process
// gets SIGUSR2: the first one starts a V8 CPU profile, the next one stops it and writes
// <BENCH_PROFILE_DIR>/<name>-<pid>.cpuprofile (name: BENCH_PROFILE_NAME, else the script's file name).
// Plain JavaScript, as it runs before any loader.
import { mkdirSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector';
import path from 'node:path';

const dir = process.env.BENCH_PROFILE_DIR;
if (dir) {
  const script = process.argv.slice(1).find((arg) => !arg.startsWith('-')) ?? 'node';
  const name = process.env.BENCH_PROFILE_NAME || path.basename(script).replace(/\.[^.]+$/, '');
  let session;
  process.on('SIGUSR2', () => {
    if (!session) {
      session = new Session();
      session.connect();
      session.post('Profiler.enable');
      session.post('Profiler.setSamplingInterval', { interval: 250 });
      session.post('Profiler.start');
      return;
    }
    const current = session;
    session = undefined;
    // In-thread inspector sessions answer synchronously.
    current.post('Profiler.stop', (error, result) => {
      current.disconnect();
      if (error || !result) return;
      mkdirSync(dir, { recursive: true });
      writeFileSync(path.join(dir, `${name}-${process.pid}.cpuprofile`), JSON.stringify(result.profile));
    });
  });
}
