/**
 * Shared helpers for lab integration tests: run the project's CLI inside a lab instance,
 * read instance state the way a person would (ip -json, files), wait for outcomes.
 */
import { createHash } from 'node:crypto';
import { closeSync, existsSync, openSync, readFileSync, readdirSync, readlinkSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { expect } from 'chai';
import { execa } from 'execa';
import * as lab from '../../scripts/lab/index.js';
import { CLI, ROOT } from '../helpers/run.js';

export { lab, CLI, ROOT };

export const HOOK = join(ROOT, 'dist/src/hook.js');

/** Run `hotplug ARGS` inside the instance, as root, with a clean environment like udev's. */
export async function hotplug(name: string, args: string[], env: Record<string, string> = {}) {
  return lab.exec([process.execPath, CLI, ...args], { name, cleanEnv: true, env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', ...env }, timeoutMs: 240_000 });
}

export interface LabFixtureOptions extends Omit<lab.UpOptions, 'name' | 'quiet'> {
  /** Run `hotplug install` in the instance after boot (it must succeed). */
  install?: boolean;
  /** Write this as /etc/cloud-hotplug/config.yaml in the instance after boot. */
  config?: string;
}

export interface LabFixture {
  name: string;
  /** Take down whatever a lab of this name left behind, boot it afresh, then install and configure. */
  boot(): Promise<lab.UpResult>;
  /** Take the lab down (throws if it cannot). Safe when boot failed half-way or never ran. */
  teardown(): Promise<void>;
  /** When the last boot() started (ms since the epoch; 0 before any). */
  bootedAt: number;
  /**
   * Register the describe block's before (boot) and after (teardown, unless `keep()`) hooks;
   * `gone`: after the teardown, assert nothing of the lab is left.
   */
  hooks(o?: { keep?: () => boolean; gone?: boolean }): void;
}

/**
 * A lab for one describe block: `boot()` from its before hook, `teardown()` from its after hook
 * (made before booting, so an after hook can always take down what a failed before left).
 */
export function labFixture(name: string, opts: LabFixtureOptions = {}): LabFixture {
  const { install, config, ...up } = opts;
  const fx: LabFixture = {
    name,
    bootedAt: 0,
    hooks(o = {}) {
      before(async () => {
        await fx.boot();
      });
      after(async () => {
        if (o.keep?.()) return;
        await fx.teardown();
        if (o.gone) expect(await assertLabGone(name)).to.deep.equal([]);
      });
    },
    async boot() {
      fx.bootedAt = Date.now();
      await lab.down({ name, quiet: true }).catch(() => {});
      const r = await lab.up({ ...up, name, quiet: true });
      if (install) {
        const i = await hotplug(name, ['install']);
        expect(i.exitCode, i.stderr).to.equal(0);
      }
      if (config !== undefined) await lab.writeFileInInstance('/etc/cloud-hotplug/config.yaml', config, { name });
      return r;
    },
    async teardown() {
      await lab.down({ name, quiet: true });
    },
  };
  return fx;
}

/** Run a command inside the instance and return stdout (throws on non-zero). */
export async function sh(name: string, argv: string[]): Promise<string> {
  const r = await lab.exec(argv, { name, cleanEnv: true, env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' } });
  if (r.exitCode !== 0) throw new Error(`${argv.join(' ')} exited ${r.exitCode}: ${r.stderr.trim()}`);
  return r.stdout;
}

/** `ip -N -json ARGS` in the instance's netns (from the host: no process in the instance). */
export async function ipJson(name: string, args: string[]): Promise<Record<string, any>[]> {
  const r = await execa('ip', ['-n', `chl-${name}-inst`, '-N', '-json', ...args]);
  return JSON.parse(r.stdout || '[]') as Record<string, any>[];
}

/** Our IPv4 rules (protocol 199) and the routes of one of our tables, as sorted text. */
export async function ourRouting(name: string, table: number): Promise<{ rules: string[]; routes: string[] }> {
  const rule = (r: Record<string, any>) =>
    `${r.priority} from ${r.src}${r.srclen !== undefined && r.srclen !== 32 ? `/${r.srclen}` : ''}${r.dst ? ` to ${r.dst}/${r.dstlen}` : ''} lookup ${r.table}${r.suppress_prefixlen !== undefined ? ` suppress_prefixlength ${r.suppress_prefixlen}` : ''}`;
  const rules = (await ipJson(name, ['-4', 'rule', 'show'])).filter((r) => String(r.protocol) === '199').map(rule);
  const routes = (await ipJson(name, ['-4', 'route', 'show', 'table', String(table)])).map((r) => `${r.dst}${r.gateway ? ` via ${r.gateway}` : ''} dev ${r.dev} proto ${r.protocol}`);
  return { rules: rules.sort(), routes: routes.sort() };
}

export interface Addr {
  ifname: string;
  address?: string;
  operstate: string;
  addr_info: { family: string; local: string; prefixlen: number; label?: string }[];
}

export async function addrs(name: string): Promise<Addr[]> {
  return JSON.parse(await sh(name, ['ip', '-json', 'addr', 'show'])) as Addr[];
}

export async function ipv4Of(name: string, ifname: string): Promise<string[]> {
  const a = (await addrs(name)).find((x) => x.ifname === ifname);
  return (a?.addr_info ?? []).filter((i) => i.family === 'inet').map((i) => i.local);
}

export async function waitFor<T>(what: string, fn: () => Promise<T | null | undefined | false>, timeoutMs = 60_000, everyMs = 100): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** One handled event as the worker keeps it in /run/cloud-hotplug/recent-events.json (src/record/events.ts). */
export interface EventRec {
  action: string;
  iface: string;
  mac?: string;
  result: string;
  reason?: string;
  crawls: number;
  probes: number;
  duration_ms: number;
}

/** The instance's recent event records, oldest first ([] before the first). */
export async function recentEvents(name: string): Promise<EventRec[]> {
  const t = await readIn(name, '/run/cloud-hotplug/recent-events.json');
  return t ? (JSON.parse(t) as EventRec[]) : [];
}

/** The first recent event record matching `pred`, polled every `everyMs`. */
export function waitRecord(name: string, pred: (r: EventRec) => boolean, timeoutMs = 60_000, everyMs = 100): Promise<EventRec> {
  return waitFor('event record', async () => (await recentEvents(name)).find(pred), timeoutMs, everyMs);
}

/** Host path of a file inside the instance (through /proc/<holder>/root). */
export async function hostPath(name: string, p: string): Promise<string> {
  // Resolve inside the instance: /var/lib/cloud/instance is an absolute symlink, which
  // /proc/<pid>/root/... would follow on the host.
  const r = await lab.exec(['readlink', '-m', p], { name, cleanEnv: true, env: { PATH: '/usr/bin:/bin' } });
  return join(await lab.instanceRootPath({ name }), r.stdout.trim() || p);
}

export async function sha(name: string, p: string): Promise<string | null> {
  const hp = await hostPath(name, p);
  return existsSync(hp) ? createHash('sha256').update(readFileSync(hp)).digest('hex') : null;
}

export async function readIn(name: string, p: string): Promise<string | null> {
  const hp = await hostPath(name, p);
  return existsSync(hp) ? readFileSync(hp, 'utf8') : null;
}

/** Number of metadata crawls (full or network-only): each reads the meta-data/network/ listing once. */
export function crawlsOf(stats: lab.ImdsStats): number {
  return Object.entries(stats.byPath)
    .filter(([p]) => /\/meta-data\/network\/?$/.test(p))
    .reduce((n, [, c]) => n + c, 0);
}

/** PIDs of processes in the instance's network namespace whose argv matches. */
export async function instancePids(name: string, match: (argv: string[]) => boolean): Promise<number[]> {
  const st = await lab.status({ name });
  const want = readlinkSync(`/proc/${st.holderPid}/ns/net`);
  const pids: number[] = [];
  for (const ent of readdirSync('/proc')) {
    if (!/^\d+$/.test(ent)) continue;
    try {
      if (readlinkSync(`/proc/${ent}/ns/net`) !== want) continue;
      const argv = readFileSync(`/proc/${ent}/cmdline`, 'utf8').split('\0').filter(Boolean);
      if (argv.length && match(argv)) pids.push(Number(ent));
    } catch {
      /* exited meanwhile */
    }
  }
  return pids;
}

/** Everything of a lab is gone: namespaces, processes, mounts, its directory. */
export async function assertLabGone(name: string): Promise<string[]> {
  const problems: string[] = [];
  const st = await lab.status({ name });
  if (st.netns.cloudExists || st.netns.instExists) problems.push('netns remains');
  for (const p of st.processes) if (p.alive) problems.push(`process ${p.what} ${p.pid} alive`);
  const mounts = readFileSync('/proc/self/mountinfo', 'utf8');
  if (mounts.includes(st.labDir)) problems.push('mount remains');
  if (existsSync(st.labDir)) problems.push('lab dir remains');
  return problems;
}

/**
 * `hotplug daemon --supervise` started in the instance, detached, with udev's clean PATH, its output
 * appended to logFile (on the host). Returns the supervisor's pid.
 */
export async function startSupervisedDaemon(name: string, logFile: string): Promise<number> {
  const argv = await lab.instanceCommand([process.execPath, CLI, 'daemon', '--supervise'], { name, cwd: ROOT });
  const fd = openSync(logFile, 'a');
  try {
    const c = spawn(argv[0]!, argv.slice(1), { detached: true, stdio: ['ignore', fd, fd], env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' } });
    c.unref();
    return c.pid!;
  } finally {
    closeSync(fd);
  }
}

/** SIGTERM to a supervisor, SIGKILL when it is still there after 15 s; nothing when it is gone. */
export async function stopSupervisor(pid: number | undefined): Promise<void> {
  if (!pid) return;
  try {
    process.kill(pid, 'SIGTERM');
    await waitFor('supervisor gone', async () => !existsSync(`/proc/${pid}`), 15_000).catch(() => process.kill(pid, 'SIGKILL'));
  } catch {
    /* already gone */
  }
}
