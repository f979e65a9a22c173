/**
 * An expected failure: printed as one line on stderr, never with a stack trace.
 * `code` is the process exit status the CLI uses for it.
 */
export class UserError extends Error {
  constructor(message: string, readonly code = 1) {
    super(message);
    this.name = 'UserError';
  }
}

/** First line of any thrown value, for one-line error output. */
export function oneLine(err: unknown): string {
  const msg = err instanceof Error ? err.message : String(err);
  return (msg.split('\n').find((l) => l.trim() !== '') ?? 'unknown error').trim();
}
