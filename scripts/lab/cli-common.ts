/** What every `lab` subcommand module shares: the --name option, number parsers, JSON output, `exec`. */
import { Option, InvalidArgumentError, type Command } from 'commander';
import { DEFAULT_NAME } from './paths.js';

export const nameOpt = () => new Option('--name <name>', 'lab name').default(DEFAULT_NAME);

export function int(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n)) throw new InvalidArgumentError('not an integer');
  return n;
}

export function num(v: string): number {
  const n = Number(v);
  if (!Number.isFinite(n)) throw new InvalidArgumentError('not a number');
  return n;
}

export const out = (v: unknown): void => {
  process.stdout.write(JSON.stringify(v, null, 2) + '\n');
};

/** An `exec` subcommand of `parent`: runs a command `where` (the instance, the client host) with the terminal, passing its exit code through. */
export function addExec(parent: Command, where: string, run: (argv: string[], o: { name: string; stdio: 'inherit' }) => Promise<{ exitCode: number }>): void {
  parent
    .command('exec')
    .description(`run a command ${where} (exit code passed through)`)
    .addOption(nameOpt())
    .argument('<cmd...>', 'command and arguments (use -- before options of the command)')
    .passThroughOptions()
    .action(async (cmd: string[], o) => {
      process.exitCode = (await run(cmd, { name: o.name, stdio: 'inherit' })).exitCode;
    });
}
