/**
 * The daemon's `ip monitor` child dies with the daemon even when the daemon is killed with -9
 * (no cleanup code runs then; under systemd KillMode=process nobody else would kill it).
 */
import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const MONITOR = fileURLToPath(new URL('../src/daemon/monitor.js', import.meta.url));
const alive = (pid: number) => existsSync(`/proc/${pid}`) && !/^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, 'utf8'));

describe('daemon: ip monitor and the daemon’s death', () => {
  it('kill -9 of the process holding a LinkMonitor takes its ip monitor with it', async function () {
    this.timeout(20_000);
    const code = `import { LinkMonitor } from ${JSON.stringify(MONITOR)};
const m = new LinkMonitor({ onAdd() {}, onRemove() {}, onState() {} });
await m.start();
process.stdout.write(String(m.pid) + '\\n');
setInterval(() => {}, 1000);`;
    const holder = spawn(process.execPath, ['--input-type=module', '-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
    const pid = await new Promise<number>((resolve, reject) => {
      holder.stdout.once('data', (d: Buffer) => resolve(Number(String(d).trim())));
      holder.once('exit', (c) => reject(new Error(`holder exited ${c}`)));
    });
    expect(pid).to.be.greaterThan(0);
    expect(readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0')).to.include.members(['ip', 'monitor']);
    holder.kill('SIGKILL');
    // The kernel delivers the parent-death signal at once; wait for it, bounded (not a speed check).
    for (let i = 0; i < 100 && alive(pid); i++) await new Promise((r) => setTimeout(r, 100));
    expect(alive(pid), `ip monitor ${pid} outlived its holder`).to.equal(false);
  });
});
