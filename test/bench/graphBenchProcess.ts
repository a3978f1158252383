/**
 * Runs the Graph comparison (graphBench.ts) in a process of its own, so that its clients' memory does not count in
 * the main bench process's RSS peak. Request: `run` { messages, warmup, rounds, connectionString? } → GraphBenchResult.
 */
import { runGraphBench } from './graphBench';
import { serve } from './ipc';

serve({
  run: (message) =>
    runGraphBench({
      messages: Number(message.messages),
      warmup: Number(message.warmup),
      rounds: Number(message.rounds),
      ...(typeof message.connectionString === 'string' ? { connectionString: message.connectionString } : {}),
      progress: (text) => process.stderr.write(`[bench] graph: ${text}\n`),
    }),
});
