/**
 * Waiting for messages to arrive at a local peer (the SMTP sink, the Graph stand-in): `arrived()` after each one
 * is kept, `waitFor(n)` resolves with everything kept once there are at least `n`, or rejects after `timeoutMs`.
 */
export function arrivals<T>(received: readonly T[], peer: string) {
  const waiters = new Set<() => void>();
  return {
    arrived(): void {
      for (const wake of [...waiters]) wake();
    },
    waitFor(n: number, timeoutMs = 5_000): Promise<T[]> {
      if (received.length >= n) return Promise.resolve([...received]);
      return new Promise((resolve, reject) => {
        const wake = () => {
          if (received.length < n) return;
          clearTimeout(timer);
          waiters.delete(wake);
          resolve([...received]);
        };
        const timer = setTimeout(() => {
          waiters.delete(wake);
          reject(new Error(`${peer}: ${received.length} of ${n} messages after ${timeoutMs} ms`));
        }, timeoutMs);
        waiters.add(wake);
      });
    },
  };
}
