import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';

/** Names this process as the holder of leases and connection slots. */
export const INSTANCE_ID = `${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`;
