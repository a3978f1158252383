/**
 * An Application Insights connection string (`InstrumentationKey=…;IngestionEndpoint=https://…/;…`), reduced
 * to what the relay's trace export needs. Problems are sentences that never repeat the key.
 */
export interface AppInsightsConnection {
  instrumentationKey: string;
  /** Ends with `/`; traces go to `{ingestionEndpoint}v2.1/track`. */
  ingestionEndpoint: string;
}

/** The global endpoint, used when the connection string names neither an endpoint nor a suffix. */
export const DEFAULT_INGESTION_ENDPOINT = 'https://dc.services.visualstudio.com/';

const LOOPBACK = new Set(['localhost', '127.0.0.1', '[::1]']);

export function parseAppInsightsConnection(text: string): AppInsightsConnection {
  const parts = new Map<string, string>();
  for (const pair of text.split(';')) {
    if (!pair.trim()) continue;
    const equals = pair.indexOf('=');
    if (equals <= 0) throw new Error(`has a part without "name=value" (parts are separated by ";")`);
    parts.set(pair.slice(0, equals).trim().toLowerCase(), pair.slice(equals + 1).trim());
  }
  const instrumentationKey = parts.get('instrumentationkey');
  if (!instrumentationKey) throw new Error('has no InstrumentationKey (copy the whole connection string of the resource)');
  return { instrumentationKey, ingestionEndpoint: ingestionEndpoint(parts) };
}

function ingestionEndpoint(parts: Map<string, string>): string {
  const suffix = parts.get('endpointsuffix');
  const location = parts.get('location');
  const text =
    parts.get('ingestionendpoint') ||
    (suffix ? `https://${location ? `${location}.` : ''}dc.${suffix}` : DEFAULT_INGESTION_ENDPOINT);
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new Error(`IngestionEndpoint "${text}" is not a URL`);
  }
  // The request carries the key or a token: plain HTTP only to this machine (a test double).
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && LOOPBACK.has(url.hostname)))
    throw new Error(`IngestionEndpoint "${text}" must be an https URL`);
  return `${url.origin}${url.pathname.replace(/\/*$/, '/')}`;
}
