import type { Command } from 'commander';
import { isQgateError } from '../errors.ts';
import { logger } from '../log.ts';

/**
 * Runs a CLI program: a QgateError becomes one clear line with its stable code and exit status 2;
 * anything else is a bug and keeps its stack.
 */
export async function runCli(program: Command): Promise<void> {
  try {
    await program.parseAsync();
  } catch (e) {
    if (isQgateError(e)) {
      logger.error({ code: e.code }, e.message);
      console.error(`error ${e.code}: ${e.message}`);
      process.exitCode = 2;
    } else {
      throw e;
    }
  }
}
