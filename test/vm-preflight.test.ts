/**
 * The VM tier fails, never skips, when the host cannot run it: scripts/vm/preflight.ts names
 * every reason on one line, scripts/setup-vm.sh installs every package it asks for, and the VM
 * suite run on a host without its tools ends non-zero with that line and no test pending. That
 * last check boots nothing: the suite stops in its before hook.
 */
import { expect } from 'chai';
import { execa } from 'execa';
import { mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { VM_TOOLS, freeMiB, preflight } from '../scripts/vm/preflight.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const MOCHA = join(ROOT, 'node_modules/mocha/bin/mocha.js');

/** The packages a setup script hands to apt-ensure.sh (its `…pkgs=(…)` arrays). */
function setupPackages(script: string): string[] {
  const text = readFileSync(join(ROOT, script), 'utf8');
  return [...text.matchAll(/^\s*\w*pkgs=\(([^)]*)\)/gm)].flatMap((m) => m[1]!.trim().split(/\s+/));
}

describe('VM tier preflight: a reason to fail, never a skip', function () {
  this.timeout(60_000);
  let bin: string;
  let savedPath: string | undefined;
  before(() => {
    // A PATH with only sh on it: every tool of the tier is "missing".
    bin = mkdtempSync(join(tmpdir(), 'vm-preflight-'));
    symlinkSync('/bin/sh', join(bin, 'sh'));
  });
  after(() => rmSync(bin, { recursive: true, force: true }));
  afterEach(() => {
    if (savedPath !== undefined) process.env.PATH = savedPath;
    savedPath = undefined;
  });

  it('names every missing tool with its Debian package, in one line', async function () {
    savedPath = process.env.PATH;
    process.env.PATH = bin;
    const why = await preflight('ifupdown');
    const line = why.find((w) => w.startsWith('missing '));
    expect(line, why.join('\n')).to.not.equal(undefined);
    for (const [cmd, pkg] of VM_TOOLS) expect(line).to.contain(`${cmd} (${pkg})`);
    expect(line).to.contain('run scripts/setup-vm.sh');
    for (const w of why) expect(w, 'one line each').to.not.contain('\n');
  });

  it('scripts/setup-vm.sh (with setup.sh) installs every package preflight can ask for', function () {
    const installed = [...setupPackages('scripts/setup-vm.sh'), ...setupPackages('scripts/setup.sh')];
    // dpkg is essential: every Debian system has it (dpkg-deb with it)
    const wanted = [...VM_TOOLS.map(([, pkg]) => pkg), 'mmdebstrap'].filter((p) => p !== 'dpkg');
    expect(installed).to.include.members(wanted);
  });

  it('free space is measured on the filesystem that would hold a directory not made yet', function () {
    expect(freeMiB('/')).to.be.greaterThan(0);
    expect(freeMiB('/nonexistent-vm-cache/images/x')).to.equal(freeMiB('/'));
  });

  it('the VM suite on a host without its tools fails with the reason and skips nothing', async function () {
    const r = await execa(process.execPath, [MOCHA, '--reporter', 'spec', join(ROOT, 'dist/test/integration/vm/vm.test.js')], {
      env: { PATH: bin, CHV_NAME: 'vmpre', HOME: tmpdir(), CHV_RESULTS_DIR: join(tmpdir(), 'hp-vmpre-results') },
      extendEnv: false,
      reject: false,
      all: true,
    });
    expect(r.exitCode, r.all).to.not.equal(0);
    expect(r.all).to.match(/1 failing/);
    expect(r.all).to.match(/"before all" hook/);
    expect(r.all).to.match(/the VM suite cannot run here: .*missing qemu-system-x86_64 \(qemu-system-x86\)/);
    expect(r.all, 'nothing reported as pending (skipped)').to.not.match(/\d+ pending/);
    expect(r.all).to.not.match(/SKIP/);
  });
});
