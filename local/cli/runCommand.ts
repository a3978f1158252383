import { ConfigError } from '../../shared/errors';

/**
 * Runs a command-line tool's `main`: an expected error (a ConfigError, or what `expected` accepts) is printed as
 * its message, a wrong option with the usage, anything else whole; each exits with 1.
 */
export function runCommand(main: () => Promise<void>, usage: string, expected: (error: unknown) => boolean = () => false): void {
  main().catch((error: unknown) => {
    if (error instanceof ConfigError || expected(error)) console.error((error as Error).message);
    else if (error instanceof TypeError && (error as { code?: string }).code?.startsWith('ERR_PARSE_ARGS'))
      console.error(`${error.message}\n\n${usage}`);
    else console.error(error);
    process.exit(1);
  });
}
