/**
 * The relay's log lines as Application Insights traces: each line, exactly as written to the console, becomes the
 * `message` of a trace (the workbook's queries extract the JSON from it). Lines are buffered and POSTed in
 * batches to `{IngestionEndpoint}v2.1/track`, the ingestion API of the Application Insights SDKs, and what the
 * service answers as retriable is sent again a few times. `add` only appends to a bounded buffer, so a slow or
 * failing endpoint never holds up a device. The export's own problems go to `problems` (the console logger,
 * never this export: no loop), at most once per `reportIntervalMs`.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { AccessToken, TokenCredential } from '@azure/identity';
import type { LogLevel, Logger } from '../shared/log/logger';
import type { AppInsightsConnection } from './appInsightsConnection';

/** The audience of Application Insights ingestion, as the SDKs request it (the double slash is theirs). */
export const INGESTION_SCOPE = 'https://monitor.azure.com//.default';
export const RELAY_CLOUD_ROLE = 'oauth-outbox-relay';

export interface TelemetryTiming {
  /** How often the buffer is sent (default 5 s); a full batch goes at once. */
  flushIntervalMs: number;
  /** The pause after a failed send, doubled after each further failure, up to a minute (default 2 s). */
  retryDelayMs: number;
  /** At most one console line about export problems per this interval (default a minute). */
  reportIntervalMs: number;
}

export interface TelemetryTarget extends AppInsightsConnection {
  /** Entra authentication: a token for INGESTION_SCOPE on every request. Without: the key alone. */
  credential: TokenCredential | undefined;
  /** `ai.cloud.roleInstance`: which relay wrote the line. */
  roleInstance: string;
}

/** An Application Insights envelope holding one trace (`MessageData`). */
export interface TraceEnvelope {
  name: 'Microsoft.ApplicationInsights.Message';
  time: string;
  iKey: string;
  tags: Record<string, string>;
  data: {
    baseType: 'MessageData';
    baseData: { ver: 2; message: string; severityLevel: number; properties: { event: string } };
  };
}

/** The ingestion's answer: on 206 (and often on 4xx/5xx) which items it refused, by their index in the batch. */
interface TrackResponse {
  itemsReceived?: number;
  itemsAccepted?: number;
  errors?: Array<{ index: number; statusCode: number; message?: string }>;
}

const SEVERITY: Record<LogLevel, number> = { info: 1, warn: 2, error: 3 };
const BATCH_SIZE = 100;
const MAX_BUFFERED = 5_000;
const MAX_ATTEMPTS = 5;
const REQUEST_TIMEOUT_MS = 30_000;
const MAX_RETRY_DELAY_MS = 60_000;
/** What the SDKs send again. 401/403 too: a new role assignment takes minutes to reach ingestion. */
const RETRIABLE = new Set([206, 401, 403, 408, 429, 439, 500, 503]);

interface Pending {
  envelope: TraceEnvelope;
  attempts: number;
}

export class TelemetryExport {
  private readonly url: string;
  private readonly timing: TelemetryTiming;
  private readonly timer: NodeJS.Timeout;
  /** Aborts the request in flight and the pauses when close() runs out of time. */
  private readonly stop = new AbortController();
  private buffer: Pending[] = [];
  private sending: Promise<void> | undefined;
  private closing: Promise<void> | undefined;
  private failedSends = 0;
  private notBefore = 0;
  private token: AccessToken | undefined;
  private lastReport = Number.NEGATIVE_INFINITY;
  private unreported: { problem: string | undefined; dropped: number } = { problem: undefined, dropped: 0 };

  constructor(
    private readonly target: TelemetryTarget,
    private readonly problems: Logger,
    timing: Partial<TelemetryTiming> = {},
  ) {
    this.url = new URL('v2.1/track', target.ingestionEndpoint).href;
    this.timing = { flushIntervalMs: 5_000, retryDelayMs: 2_000, reportIntervalMs: 60_000, ...timing };
    this.timer = setInterval(() => this.tick(), this.timing.flushIntervalMs).unref();
  }

  /** A LogWriter: (level, line) as the logger wrote it. */
  readonly add = (level: LogLevel, line: string): void => {
    if (this.closing) return;
    this.buffer.push({ envelope: this.envelope(level, line), attempts: 0 });
    if (this.buffer.length > MAX_BUFFERED) this.drop(this.buffer.splice(0, this.buffer.length - MAX_BUFFERED).length);
    if (this.buffer.length === BATCH_SIZE) setImmediate(() => this.kick());
  };

  /** Sends what is buffered within `timeoutMs`; what is left then is counted as dropped and reported. */
  close(timeoutMs = 5_000): Promise<void> {
    this.closing ??= (async () => {
      clearInterval(this.timer);
      const deadline = setTimeout(() => this.stop.abort(), timeoutMs);
      try {
        await this.sending;
        while (this.buffer.length > 0 && !this.stop.signal.aborted) {
          const pause = this.notBefore - Date.now();
          if (pause > 0) await sleep(pause, undefined, { signal: this.stop.signal }).catch(() => {});
          if (!this.stop.signal.aborted) await this.sendBatch();
        }
      } finally {
        clearTimeout(deadline);
      }
      this.drop(this.buffer.splice(0).length);
      // The last word, even within the minute: otherwise lines lost at shutdown would go unnoticed.
      this.report(true);
    })();
    return this.closing;
  }

  /**
   * Sends one line now, outside the buffer (send-test): resolves when the service accepted it, rejects with
   * the reason (and the missing role, for 401/403) otherwise.
   */
  async probe(level: LogLevel, line: string): Promise<void> {
    const answer = await this.post([this.envelope(level, line)]);
    if (answer.status !== 200) throw new Error(this.describe(answer.status, answer.body?.errors?.[0]?.message));
  }

  private envelope(level: LogLevel, line: string): TraceEnvelope {
    return {
      name: 'Microsoft.ApplicationInsights.Message',
      time: new Date().toISOString(),
      iKey: this.target.instrumentationKey,
      tags: { 'ai.cloud.role': RELAY_CLOUD_ROLE, 'ai.cloud.roleInstance': this.target.roleInstance },
      data: {
        baseType: 'MessageData',
        baseData: { ver: 2, message: line, severityLevel: SEVERITY[level], properties: { event: eventName(line) } },
      },
    };
  }

  private tick(): void {
    this.kick();
    this.report(false);
  }

  private kick(): void {
    if (this.closing || this.sending || this.buffer.length === 0 || Date.now() < this.notBefore) return;
    this.sending = this.sendBatch().finally(() => {
      this.sending = undefined;
      if (this.buffer.length >= BATCH_SIZE) this.kick();
    });
  }

  private async sendBatch(): Promise<void> {
    const batch = this.buffer.splice(0, BATCH_SIZE);
    let retry: Pending[] = [];
    let refused = 0;
    let problem: string | undefined;
    let retryAfterMs = 0;
    try {
      const answer = await this.post(batch.map((p) => p.envelope));
      if (answer.status === 200) {
        this.failedSends = 0;
        this.notBefore = 0;
        return;
      }
      const errors = answer.body?.errors ?? [];
      // Like the SDKs: when the answer names the refused items, only those whose own status is retriable go again.
      if (RETRIABLE.has(answer.status) && errors.length > 0) {
        retry = errors.filter((e) => RETRIABLE.has(e.statusCode)).flatMap((e) => batch[e.index] ?? []);
        refused = errors.length - retry.length;
      } else if (RETRIABLE.has(answer.status)) retry = batch;
      else refused = batch.length;
      problem = this.describe(answer.status, errors[0]?.message);
      retryAfterMs = answer.retryAfterMs;
    } catch (error) {
      retry = batch;
      problem = this.stop.signal.aborted ? 'the relay stopped before the endpoint answered' : failureText(error);
    }
    const again = retry.filter((p) => ++p.attempts < MAX_ATTEMPTS);
    this.drop(refused + retry.length - again.length);
    this.buffer.unshift(...again);
    if (this.buffer.length > MAX_BUFFERED) this.drop(this.buffer.splice(0, this.buffer.length - MAX_BUFFERED).length);
    this.unreported.problem = problem;
    if (again.length > 0) {
      this.failedSends += 1;
      const backoff = Math.min(MAX_RETRY_DELAY_MS, this.timing.retryDelayMs * 2 ** (this.failedSends - 1));
      this.notBefore = Date.now() + Math.max(backoff, Math.min(retryAfterMs, MAX_RETRY_DELAY_MS));
    }
  }

  private async post(
    envelopes: TraceEnvelope[],
  ): Promise<{ status: number; body: TrackResponse | undefined; retryAfterMs: number }> {
    const signal = AbortSignal.any([this.stop.signal, AbortSignal.timeout(REQUEST_TIMEOUT_MS)]);
    const response = await fetch(this.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(await this.authorization(signal)) },
      body: JSON.stringify(envelopes),
      signal,
    });
    const text = await response.text();
    let body: TrackResponse | undefined;
    try {
      body = JSON.parse(text) as TrackResponse;
    } catch {
      body = undefined;
    }
    const retryAfter = Number(response.headers.get('retry-after'));
    return { status: response.status, body, retryAfterMs: Number.isFinite(retryAfter) ? retryAfter * 1000 : 0 };
  }

  private async authorization(signal: AbortSignal): Promise<Record<string, string>> {
    const credential = this.target.credential;
    if (!credential) return {};
    if (!this.token || this.token.expiresOnTimestamp - Date.now() < 5 * 60_000) {
      try {
        this.token = (await credential.getToken(INGESTION_SCOPE, { abortSignal: signal })) ?? undefined;
      } catch (error) {
        throw new Error(`no token for Application Insights: ${(error as Error).message.split('\n')[0]}`, { cause: error });
      }
      if (!this.token) throw new Error('no token for Application Insights: the identity returned none');
    }
    return { authorization: `Bearer ${this.token.token}` };
  }

  private describe(status: number, message: string | undefined): string {
    const hint =
      status === 401 || status === 403
        ? this.target.credential
          ? ": the relay's identity needs the Monitoring Metrics Publisher role on the Application Insights resource"
          : ': the resource accepts Entra authentication only ("authentication": "entra")'
        : '';
    const said = message ? ` ${message.slice(0, 200)}` : '';
    return `HTTP ${status}${said}${hint}`.replaceAll(this.target.instrumentationKey, '…');
  }

  private drop(count: number): void {
    this.unreported.dropped += count;
  }

  private report(final: boolean): void {
    const { problem, dropped } = this.unreported;
    if (!problem && dropped === 0) return;
    if (!final && Date.now() - this.lastReport < this.timing.reportIntervalMs) return;
    if (final && !dropped) return;
    this.lastReport = Date.now();
    this.unreported = { problem: undefined, dropped: 0 };
    const endpoint = new URL(this.url).host;
    if (problem && !final)
      this.problems.warn('relay.telemetry_export_failed', { endpoint, problem, dropped, waiting: this.buffer.length });
    else this.problems.warn('relay.telemetry_dropped', { endpoint, dropped, ...(problem ? { problem } : {}) });
  }
}

/** `{"event":"relay.session",…}` → relay.session, without parsing the whole line. */
function eventName(line: string): string {
  return /^\{"event":"([^"\\]*)"/.exec(line)?.[1] ?? '';
}

/** fetch says only "fetch failed"; the reason (ECONNREFUSED, a certificate error) is in its cause. */
function failureText(error: unknown): string {
  const message = (error as Error).message.split('\n')[0]!;
  const cause = (error as { cause?: { code?: string; message?: string } }).cause;
  const detail = message === 'fetch failed' ? (cause?.code ?? cause?.message?.split('\n')[0]) : undefined;
  return `${message}${detail ? ` (${detail})` : ''}`.slice(0, 300);
}
