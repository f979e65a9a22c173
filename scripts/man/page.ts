/**
 * hotplug(8) in roff (man macros), generated from the commander tree of src/program.ts: every
 * command (subcommands too) with its synopsis, description, arguments and options as `--help`
 * shows them, plus the sections --help has no room for (exit status, environment, files).
 */
import type { Argument, Command, Help, Option } from 'commander';

export interface PageInput {
  program: Command;
  version: string;
  /** YYYY-MM-DD for the title line; '' leaves it out. */
  date: string;
  /** Files worth naming, path → what it is. */
  files: [string, string][];
}

/**
 * Text for roff: backslashes escaped, every hyphen a real minus (options must copy-paste as
 * ASCII '-'), and a line starting with '.' or "'" guarded so it is not read as a request.
 */
export function roffText(s: string): string {
  return s
    .replace(/\\/g, '\\e')
    .replace(/-/g, '\\-')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '')
    .map((l) => (/^[.']/.test(l) ? `\\&${l}` : l))
    .join('\n')
    .replace(/`([^`\n]+)`/g, '\\fB$1\\fR');
}

/** A command's path from the root, e.g. "hotplug install". */
function fullName(cmd: Command): string {
  const names: string[] = [];
  for (let c: Command | null = cmd; c; c = c.parent) names.unshift(c.name());
  return names.join(' ');
}

const argTerm = (a: Argument) => (a.required ? `<${a.name()}${a.variadic ? '...' : ''}>` : `[${a.name()}${a.variadic ? '...' : ''}]`);

/** Options but the help flag (every command has it; said once under OPTIONS). */
function ownOptions(help: Help, cmd: Command): Option[] {
  return help.visibleOptions(cmd).filter((o) => o.long !== '--help');
}

function synopsis(help: Help, cmd: Command): string {
  const parts = [`\\fB${roffText(fullName(cmd))}\\fR`];
  for (const o of ownOptions(help, cmd)) {
    const [flags, value] = o.flags.split(/ (?=[<[])/);
    parts.push(`[\\fB${roffText(flags!.replace(', ', '|'))}\\fR${value ? ` \\fI${roffText(value)}\\fR` : ''}]`);
  }
  for (const a of help.visibleArguments(cmd)) parts.push(`\\fI${roffText(argTerm(a))}\\fR`);
  if (help.visibleCommands(cmd).some((c) => c.name() !== 'help')) parts.push('\\fIcommand\\fR');
  return parts.join(' ');
}

/** `.TP` entries: term in bold (its value placeholder in italics), description as --help has it. */
function optionItems(help: Help, options: Option[]): string[] {
  const out: string[] = [];
  for (const o of options) {
    const [flags, value] = o.flags.split(/ (?=[<[])/);
    out.push('.TP', `\\fB${roffText(flags!)}\\fR${value ? ` \\fI${roffText(value)}\\fR` : ''}`, roffText(help.optionDescription(o)));
  }
  return out;
}

function commandSection(help: Help, cmd: Command): string[] {
  const out = ['.SS ' + `"${fullName(cmd).replace(/-/g, '\\-')}"`, synopsis(help, cmd), '.PP', roffText(cmd.description())];
  const args = help.visibleArguments(cmd);
  for (const a of args) out.push('.TP', `\\fI${roffText(a.name())}\\fR`, roffText(help.argumentDescription(a) || '(argument)'));
  out.push(...optionItems(help, ownOptions(help, cmd)));
  for (const sub of help.visibleCommands(cmd)) if (sub.name() !== 'help') out.push(...commandSection(help, sub));
  return out;
}

/** Every command below the root, depth first, in the order they were registered. */
export function commandNames(program: Command): string[] {
  const out: string[] = [];
  const walk = (c: Command) => {
    for (const s of c.commands) {
      out.push(fullName(s).split(' ').slice(1).join(' '));
      walk(s);
    }
  };
  walk(program);
  return out;
}

export function manPage({ program, version, date, files }: PageInput): string {
  const help = program.createHelp();
  const name = program.name();
  const o: string[] = [
    `.\\" Generated from the commander definitions (src/program.ts) by scripts/man/page.ts; do not edit.`,
    `.TH ${name.toUpperCase()} 8 "${date}" "cloud\\-hotplug ${roffText(version)}" "System Administration"`,
    '.SH NAME',
    `${name} \\- network hotplug for cloud instances, driving the installed cloud\\-init`,
    '.SH SYNOPSIS',
    `\\fB${name}\\fR [\\fB\\-V\\fR|\\fB\\-\\-version\\fR] [\\fB\\-h\\fR|\\fB\\-\\-help\\fR]`,
    '.br',
    `\\fB${name}\\fR \\fIcommand\\fR [\\fIoptions\\fR]`,
    '.SH DESCRIPTION',
    roffText(program.description()),
    '.PP',
    'When an interface is attached to a running instance (or detached), a udev rule queues the event',
    'and a worker (or the daemon) configures it, or cleans it up, through the upstream cloud\\-init',
    "installed on the instance: its cached datasource, its metadata crawler, its distro renderer and",
    'activator; then policy routing makes secondary interfaces answer through the interface they',
    'were reached on.',
    '.SH COMMANDS',
  ];
  for (const cmd of help.visibleCommands(program)) if (cmd.name() !== 'help') o.push(...commandSection(help, cmd));
  o.push('.SH OPTIONS', `Of \\fB${name}\\fR itself (\\fB\\-\\-help\\fR also after any command):`, ...optionItems(help, help.visibleOptions(program)));
  o.push(
    '.SH EXIT STATUS',
    '0 on success; 1 when a command fails (one line on standard error says why); 2 for a usage',
    'error; 4 when a command that needs root is run without it.',
    '.SH ENVIRONMENT',
    '.TP',
    '.B HOTPLUG_DEBUG=1',
    'debug logs, and stack traces with errors.',
    '.TP',
    '.B PYTHON_BIN',
    'the Python interpreter that has cloud\\-init (default \\fI/usr/bin/python3\\fR).',
    '.SH FILES',
  );
  for (const [path, what] of files) o.push('.TP', `.I ${roffText(path)}`, roffText(what));
  o.push('.SH SEE ALSO', '.BR cloud\\-init (1),', '.BR udev (7),', '.BR ip (8)');
  return o.join('\n') + '\n';
}
