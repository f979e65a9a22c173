/** What every `lab` subcommand module shares: the --name option, number parsers, JSON output. */
import { Option, InvalidArgumentError } from 'commander';
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
