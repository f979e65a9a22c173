/**
 * The `hotplug` command tree (commander), built without parsing: cli.ts runs it, and the manual
 * page generator (scripts/man/) walks it at build time.
 *
 * Each command file is imported only when needed: given the argv, buildProgram() loads just the
 * invoked command's file (and so its modules), since a one-shot run pays for every module node
 * loads (execa alone is ~80 ms); help, --version, an unknown command and the manual page load all.
 */
import { Command } from 'commander';

export const VERSION = '0.1.0';

type Registrar = { register(program: Command): void };

/** Command names → the file that registers them, in the order help lists them. */
const COMMANDS: [names: string[], load: () => Promise<Registrar>][] = [
  [['refresh-metadata'], () => import('./commands/refresh-metadata.js')],
  [['apply'], () => import('./commands/apply.js')],
  [['query'], () => import('./commands/query.js')],
  [['status'], () => import('./commands/status.js')],
  [['handle'], () => import('./commands/handle.js')],
  [['worker'], () => import('./commands/worker.js')],
  [['enable', 'disable'], () => import('./commands/enable.js')],
  [['install', 'uninstall'], () => import('./commands/install.js')],
  [['routes'], () => import('./commands/routes.js')],
  [['daemon'], () => import('./commands/daemon.js')],
  [['jobs', 'wait'], () => import('./commands/jobs.js')],
];

/** The command an argv (without node and the script) invokes: the first word (no global option takes a value). */
export function invokedCommand(args: string[]): string | undefined {
  return args.find((a) => !a.startsWith('-'));
}

/** The whole tree; with `args`, only the invoked command when it is a known one. */
export async function buildProgram(args?: string[]): Promise<Command> {
  const program = new Command();
  program
    .name('hotplug')
    .description('Network hotplug for cloud instances, driving the installed cloud-init through a Python bridge.')
    .version(VERSION)
    .showHelpAfterError();
  const name = args && invokedCommand(args);
  const only = name !== undefined ? COMMANDS.filter(([names]) => names.includes(name)) : [];
  for (const [, load] of only.length ? only : COMMANDS) (await load()).register(program);
  return program;
}
