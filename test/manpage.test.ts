/**
 * hotplug(8): the page `npm run build` writes (dist/man/hotplug.8) names every command of the
 * commander tree with each of its options, and man(1) renders it without a single warning. The
 * roff escaping is checked on hostile text the same way: through the real formatter.
 */
import { expect } from 'chai';
import { execa } from 'execa';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import { buildProgram } from '../src/program.js';
import { commandNames, manPage } from '../scripts/man/page.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const PAGE = join(ROOT, 'dist/man/hotplug.8');

/** The page as man(1) shows it (plain text), and what groff warned on the way. */
async function render(file: string): Promise<{ text: string; warnings: string }> {
  const r = await execa('man', ['--warnings=all', '-l', file], {
    env: { MANWIDTH: '100', MAN_KEEP_FORMATTING: '', LC_ALL: 'C.UTF-8', MANPAGER: 'cat', PAGER: 'cat' },
    reject: false,
  }).catch((e: NodeJS.ErrnoException) => {
    throw new Error(e.code === 'ENOENT' ? 'man missing: apt-get install man-db (scripts/setup.sh installs it)' : String(e));
  });
  expect(r.exitCode, `man -l ${file}: ${r.stderr}`).to.equal(0);
  // man-db strips nothing from stdout with MANPAGER=cat, but may emit overstrike: drop it
  return { text: r.stdout.replace(/.\x08/g, ''), warnings: r.stderr };
}

/** The text of one command's section: from its heading to the next heading. */
function section(text: string, heading: string): string {
  const lines = text.split('\n');
  const i = lines.findIndex((l) => l.trim() === heading);
  if (i < 0) return '';
  const j = lines.findIndex((l, k) => k > i && /^ {0,3}\S/.test(l));
  return lines.slice(i, j < 0 ? undefined : j).join('\n');
}

describe('hotplug(8): generated from the commander definitions', function () {
  this.timeout(60_000);

  it('npm run build wrote it; man renders it without warnings', async function () {
    const { text, warnings } = await render(PAGE);
    expect(warnings, 'man/groff warnings').to.equal('');
    expect(text).to.match(/^HOTPLUG\(8\)/);
    for (const h of ['NAME', 'SYNOPSIS', 'DESCRIPTION', 'COMMANDS', 'OPTIONS', 'EXIT STATUS', 'ENVIRONMENT', 'FILES', 'SEE ALSO']) {
      expect(text, `section ${h}`).to.match(new RegExp(`^${h}$`, 'm'));
    }
    expect(text).to.contain('/etc/cloud-hotplug/config.yaml');
    // no build-machine path leaks into the page (install --node's default is described instead)
    expect(readFileSync(PAGE, 'utf8')).to.not.contain(process.execPath.replace(/-/g, '\\-'));
  });

  it('lists every command, with its description and every one of its options', async function () {
    const { text } = await render(PAGE);
    const program = await buildProgram();
    const names = commandNames(program);
    expect(names, 'the commands the CLI has').to.include.members(['refresh-metadata', 'apply', 'query', 'status', 'handle', 'worker', 'enable', 'disable', 'install', 'uninstall', 'routes', 'daemon']);
    const flat = (s: string) => s.replace(/\s+/g, ' ').replace(/‐ /g, '');
    for (const name of names) {
      const cmd = name.split(' ').reduce((c: Command, n) => c.commands.find((x) => x.name() === n)!, program);
      const sec = section(text, `hotplug ${name}`);
      expect(sec, `section for hotplug ${name}`).to.not.equal('');
      expect(flat(sec), `${name}: its description`).to.contain(flat(cmd.description()).slice(0, 60));
      for (const o of cmd.options) {
        if (o.hidden) continue;
        expect(sec, `${name}: option ${o.flags}`).to.contain(o.long ?? o.short!);
        expect(flat(sec), `${name}: ${o.flags}'s description`).to.contain(flat(o.description));
      }
    }
    expect(section(text, 'OPTIONS')).to.contain('--version');
  });

  it('escapes what roff would read as requests or escapes, nested commands included', async function () {
    const p = new Command('tool').description('A tool.\n.TH would be a request here\nback\\slash and a `literal`');
    const group = p.command('group').description("'quoted start of line");
    group.command('leaf').argument('<target>', 'what to act on').option('--dry-run', "print, don't act").description('Nested.');
    const dir = mkdtempSync(join(tmpdir(), 'manpage-'));
    try {
      const file = join(dir, 'tool.8');
      writeFileSync(file, manPage({ program: p, version: '1.0', date: '2026-01-01', files: [['/etc/tool.conf', 'config']] }));
      const { text, warnings } = await render(file);
      expect(warnings).to.equal('');
      expect(commandNames(p)).to.deep.equal(['group', 'group leaf']);
      expect(text).to.contain('.TH would be a request here');
      expect(text).to.contain('back\\slash and a literal');
      expect(text).to.contain("'quoted start of line");
      const leaf = section(text, 'tool group leaf');
      expect(leaf).to.match(/tool group leaf \[--dry-run\] <target>/);
      expect(leaf).to.contain('what to act on');
      expect(leaf).to.contain("print, don't act");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
