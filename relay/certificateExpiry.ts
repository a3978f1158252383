/**
 * When a certificate expires, for the start-up log: the relay's TLS certificate and the storage identity's
 * certificate both end its service on a fixed day, so each start says when, and warns within 30 days.
 */
import { X509Certificate } from 'node:crypto';
import type { Logger } from '../shared/log/logger';

export const EXPIRY_WARNING_DAYS = 30;

export interface CertificateExpiry {
  subject: string;
  notAfter: string;
  daysLeft: number;
}

/** The first certificate of a PEM text (a key may come first, as in the identity's PEM file). */
export function certificateExpiry(pem: string, now = Date.now()): CertificateExpiry | undefined {
  const block = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(pem)?.[0];
  if (!block) return undefined;
  const certificate = new X509Certificate(block);
  return {
    subject: certificate.subject.replace(/\n/g, ', '),
    notAfter: certificate.validTo,
    daysLeft: Math.floor((Date.parse(certificate.validTo) - now) / 86_400_000),
  };
}

/** `relay.<what>_certificate`, or `relay.<what>_certificate_expires_soon` as a warning. */
export function logCertificateExpiry(log: Logger, what: 'tls' | 'storage_identity', pem: string): void {
  const expiry = certificateExpiry(pem);
  if (!expiry) return;
  if (expiry.daysLeft <= EXPIRY_WARNING_DAYS) log.warn(`relay.${what}_certificate_expires_soon`, { ...expiry });
  else log.info(`relay.${what}_certificate`, { ...expiry });
}
