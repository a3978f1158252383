/** Bundles relay/main.ts into one ESM file (default dist/relay.mjs); resolves with its size in bytes. */
export declare function buildRelay(outfile?: string): Promise<number>;
