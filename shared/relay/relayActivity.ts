/**
 * What a relay reports of its devices, for the status page: blob `relay-activity/<relay host name>.json`, one
 * per relay, rewritten by it at most every few seconds while something happens. Bounded whatever the traffic:
 * one entry per configured device, plus one for connections that never became a device (unknown user, wrong
 * network), each with counts and only the last message and the last refusal.
 */
import type { ContainerClient } from '@azure/storage-blob';
import { z } from 'zod';

/** The entry of connections that were refused before a device was known. */
export const NO_DEVICE = '(no device)';

const refusal = z
  .object({
    at: z.iso.datetime(),
    /** The reply's stable reason, e.g. `sender_not_allowed`. */
    reason: z.string().max(64),
    /** The SMTP reply as the device saw it. */
    reply: z.string().max(400),
    /** The client's address. */
    remote: z.string().max(64),
  })
  .strict();

const deviceActivity = z
  .object({
    device: z.string().max(64),
    account: z.string().max(64).optional(),
    queued: z.number().int().min(0),
    refused: z.number().int().min(0),
    lastMessage: z
      .object({ at: z.iso.datetime(), id: z.string().max(200) })
      .strict()
      .optional(),
    lastRefusal: refusal.optional(),
  })
  .strict();

export const relayActivitySchema = z
  .object({
    version: z.literal(1),
    relay: z.string().max(253),
    startedAt: z.iso.datetime(),
    updatedAt: z.iso.datetime(),
    devices: z.array(deviceActivity).max(10_001),
  })
  .strict();

export type RelayActivity = z.infer<typeof relayActivitySchema>;
export type DeviceActivity = z.infer<typeof deviceActivity>;
export type RelayRefusal = z.infer<typeof refusal>;

/** At most this many relays are shown; a relay's blob name is its host name. */
const MAX_RELAYS = 50;

/** Every relay's report, newest first; an unreadable blob is skipped (one bad relay does not hide the others). */
export async function readRelayActivity(container: ContainerClient): Promise<RelayActivity[]> {
  const reports: RelayActivity[] = [];
  try {
    for await (const item of container.listBlobsFlat()) {
      if (reports.length >= MAX_RELAYS) break;
      if (!item.name.endsWith('.json')) continue;
      try {
        const body = await container.getBlockBlobClient(item.name).downloadToBuffer();
        const parsed = relayActivitySchema.safeParse(JSON.parse(body.toString('utf8')));
        if (parsed.success) reports.push(parsed.data);
      } catch {
        // A blob deleted or half-written between the listing and the read.
      }
    }
  } catch (error) {
    // No relay has reported yet (the container is created by the first relay, or by the deployment).
    if ((error as { statusCode?: number }).statusCode === 404) return [];
    throw error;
  }
  return reports.sort((a, b) => b.updatedAt.localeCompare(a.updatedAt));
}
