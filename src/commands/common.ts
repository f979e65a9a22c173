/** Helpers shared by the command files: JSON output and the one-line error contract. */
import { oneLine, UserError } from '../util/errors.js';
import { BridgeError } from '../../bridge/index.js';

export function printJson(v: unknown): void {
  process.stdout.write(JSON.stringify(v, null, 2) + '\n');
}

/**
 * Wrap a command action: expected failures print one line on stderr and set the exit
 * code; unexpected ones too (the stack only with HOTPLUG_DEBUG=1).
 */
export function action<A extends unknown[]>(fn: (...args: A) => Promise<number | void>): (...args: A) => Promise<void> {
  return async (...args: A) => {
    try {
      const code = await fn(...args);
      process.exitCode = code ?? 0;
    } catch (e) {
      // A bridge failure carries its own code (1, as before the bridge stopped extending UserError).
      const code = e instanceof UserError || e instanceof BridgeError ? e.code : 1;
      process.stderr.write(`hotplug: ${oneLine(e)}\n`);
      if (process.env.HOTPLUG_DEBUG && e instanceof Error && e.stack) process.stderr.write(e.stack + '\n');
      process.exitCode = code;
    }
  };
}
