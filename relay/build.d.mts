/** Bundles relay/main.ts into one ESM file (default dist/relay.mjs); resolves with its size in bytes. */
export declare function buildRelay(outfile?: string): Promise<number>;

/** The Node options and environment the Dockerfile and the systemd unit run the bundle with. */
export declare const RELAY_RUNTIME: Readonly<{ nodeOptions: readonly string[]; env: Readonly<Record<string, string>> }>;

/** Writes `<file>.sha256` (sha256sum's format) next to the file; resolves with the hex hash. */
export declare function writeChecksum(file: string): Promise<string>;
