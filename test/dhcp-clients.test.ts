/** DHCP client processes (src/stack/dhcp-clients.ts): found by program name and interface, stopped without waiting on zombies. */
import { expect } from 'chai';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { dhcpClientsOf, procState, stopDhcpClients } from '../src/stack/dhcp-clients.js';

describe('DHCP client processes', function () {
  this.timeout(10_000);
  let dir: string;
  const kids: ChildProcess[] = [];
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'hp-dhcpc-'));
    symlinkSync(process.execPath, join(dir, 'dhclient')); // argv[0] names the program, as a real dhclient's does
  });
  after(() => {
    for (const k of kids) k.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });
  /** A stand-in client for `ifname`; `ignoreTerm` makes it survive SIGTERM. */
  const client = async (ifname: string, ignoreTerm: boolean): Promise<ChildProcess> => {
    const code = `${ignoreTerm ? "process.on('SIGTERM', () => {});" : ''} setTimeout(() => {}, 30000); console.log('up')`;
    const k = spawn(join(dir, 'dhclient'), ['-e', code, ifname], { stdio: ['ignore', 'pipe', 'ignore'] });
    kids.push(k);
    await new Promise((r) => k.stdout!.once('data', r));
    return k;
  };

  it('reads the state letter after the last parenthesis of /proc/PID/stat', () => {
    expect(procState('4242 (dhclient) S 1 4242 4242 0 -1')).to.equal('S');
    expect(procState('4242 (dhclient) Z 1 4242')).to.equal('Z');
    expect(procState('77 (a) b) (c) R 1 2')).to.equal('R');
    expect(procState('')).to.equal(null);
    expect(procState('garbage')).to.equal(null);
  });

  it('finds clients by interface argument exactly (never as a substring)', async () => {
    const a = await client('hpt0', false);
    const b = await client('hpt01', false);
    const found = await dhcpClientsOf(['hpt0']);
    expect(found.map((c) => c.pid)).to.include(a.pid).and.not.include(b.pid);
    expect(found.every((c) => c.ifname === 'hpt0')).to.equal(true);
  });

  it('a client that exited but is not reaped yet (a zombie: its parent reaps late) counts as stopped, not waited for', async () => {
    // sh starts the client in the background, then becomes `sleep`, which never reaps it.
    const parent = spawn('/bin/sh', ['-c', `"${join(dir, 'dhclient')}" -e "setTimeout(() => {}, 30000)" hpt4 & exec sleep 5`], { stdio: 'ignore' });
    kids.push(parent);
    for (let i = 0; i < 100 && !(await dhcpClientsOf(['hpt4'])).length; i++) await new Promise((r) => setTimeout(r, 20));
    const [c] = await dhcpClientsOf(['hpt4']);
    expect(c, 'the stand-in client started').to.not.equal(undefined);
    const t0 = Date.now();
    expect(await stopDhcpClients('hpt4')).to.equal(1);
    expect(Date.now() - t0, 'no wait for the parent to reap it').to.be.below(500);
  });

  it('a client that exits on SIGTERM is stopped at once; one that ignores it is killed after a second', async () => {
    const quick = await client('hpt2', false);
    let t0 = Date.now();
    expect(await stopDhcpClients('hpt2')).to.equal(1);
    expect(Date.now() - t0).to.be.below(500);
    expect(quick.exitCode !== null || quick.signalCode !== null || (await dhcpClientsOf(['hpt2'])).length === 0).to.equal(true);
    const stubborn = await client('hpt3', true);
    t0 = Date.now();
    expect(await stopDhcpClients('hpt3')).to.equal(1);
    expect(Date.now() - t0).to.be.within(900, 3000);
    await new Promise((r) => (stubborn.exitCode !== null || stubborn.signalCode !== null ? r(null) : stubborn.once('exit', r)));
    expect(stubborn.signalCode).to.equal('SIGKILL');
  });
});
