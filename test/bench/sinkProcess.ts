/**
 * Runs the XOAUTH2 budget sink (test/support/budgetSmtp.ts) in its own process, so that on a small machine the
 * server's CPU is not taken from the client being measured (in production the SMTP server is remote).
 * Requests: `start` { options, tls } → { port }; `stats` { from?, to?, windowMs? } → counters; `reset`.
 */
import { loadTestTls } from '../support/certs';
import { startBudgetSmtp, type BudgetSmtp, type BudgetSmtpOptions } from '../support/budgetSmtp';
import { rssSampler, serve } from './ipc';

export interface SinkStats {
  accepted: number;
  /** Accepted with from <= time < to, when a range was given. */
  acceptedInRange: number;
  throttleReplies: number;
  connectionThrottles: number;
  rateThrottles: number;
  authFailures: number;
  connectionsPeak: number;
  openConnections: number;
  /** Most accepted in any window of `windowMs` (when given). */
  peakInWindow: number;
  firstAcceptedAt?: number;
  lastAcceptedAt?: number;
  rssMbPeak: number;
}

let sink: BudgetSmtp | undefined;
const rss = rssSampler();

serve(
  {
    async start(message) {
      const options = { ...(message.options as BudgetSmtpOptions) };
      if (options.security && options.security !== 'plain') {
        const tls = await loadTestTls();
        options.key = tls.key;
        options.cert = tls.cert;
      }
      await sink?.stop();
      sink = await startBudgetSmtp({ verifyToken: (_user, token) => token.startsWith('test-access-token-'), ...options });
      return { port: sink.port, host: sink.host };
    },
    stats(message): SinkStats {
      if (!sink) throw new Error('no sink running');
      const from = typeof message.from === 'number' ? message.from : -Infinity;
      const to = typeof message.to === 'number' ? message.to : Infinity;
      const times = sink.acceptedAt;
      let inRange = 0;
      for (const t of times) if (t >= from && t < to) inRange++;
      return {
        accepted: sink.accepted,
        acceptedInRange: inRange,
        throttleReplies: sink.throttleReplies,
        connectionThrottles: sink.connectionThrottles,
        rateThrottles: sink.rateThrottles,
        authFailures: sink.authFailures,
        connectionsPeak: sink.connectionsPeak,
        openConnections: sink.openConnections,
        peakInWindow: typeof message.windowMs === 'number' ? sink.peakInWindow(message.windowMs) : 0,
        ...(times.length > 0 ? { firstAcceptedAt: times[0], lastAcceptedAt: times[times.length - 1] } : {}),
        rssMbPeak: rss.peakMb(),
      };
    },
    async stop() {
      await sink?.stop();
      sink = undefined;
      return {};
    },
  },
  async () => {
    await sink?.stop();
  },
);
