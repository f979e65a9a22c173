/**
 * One booted lab as the bench sees it: running things in the instance, reading its files,
 * the processes living in its network namespace, and a cpuacct cgroup that every process of
 * the instance is moved into (so CPU of short-lived hook/python/ifup/dhclient processes is
 * counted exactly, including processes that detach and are reparented out of udevd's tree).
 */
import { existsSync, mkdirSync, readFileSync, readdirSync, readlinkSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as lab from '../../scripts/lab/index.js';

export const PATH_ENV = { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', LANG: 'C.UTF-8', HOME: '/root' };
const CPUACCT = '/sys/fs/cgroup/cpuacct';

export class LabCtx {
  readonly netns: string;
  holderPid = 0;
  netIno = '';
  root = '';
  cgroup: string | null = null;
  cgroupError: string | null = null;
  /** epoch ms − monotonic ms (udevadm monitor stamps events with CLOCK_MONOTONIC). */
  readonly monoOffsetMs: number;

  constructor(
    readonly name: string,
    readonly mode: lab.LabMode,
    /** The cloud the lab emulates (the mode then only sets EC2's token policy). */
    readonly cloud: 'ec2' | 'openstack' | 'configdrive' = 'ec2',
  ) {
    this.netns = `chl-${name}-inst`;
    this.monoOffsetMs = Date.now() - lab.monotonicNow() * 1000;
  }

  async up(): Promise<number> {
    const t0 = performance.now();
    await lab.down({ name: this.name, quiet: true }).catch(() => {});
    const r = await lab.up({ name: this.name, mode: this.mode, cloud: this.cloud, quiet: true });
    this.holderPid = r.holderPid;
    this.netIno = readlinkSync(`/proc/${this.holderPid}/ns/net`);
    this.root = `/proc/${this.holderPid}/root`;
    this.setupCgroup();
    return performance.now() - t0;
  }

  async down(): Promise<void> {
    await lab.down({ name: this.name, quiet: true }).catch(() => {});
    const cg = this.cgroup ?? join(CPUACCT, `bench-${this.name}`);
    if (existsSync(cg)) {
      for (let i = 0; i < 20; i++) {
        try {
          rmdirSync(cg);
          break;
        } catch {
          await new Promise((r) => setTimeout(r, 100));
        }
      }
      this.cgroup = null;
    }
  }

  // ----------------------------------------------------------------------------- processes

  /** PIDs whose network namespace is the instance's. */
  pids(): number[] {
    const out: number[] = [];
    for (const e of readdirSync('/proc')) {
      if (!/^\d+$/.test(e)) continue;
      try {
        if (readlinkSync(`/proc/${e}/ns/net`) === this.netIno) out.push(Number(e));
      } catch {
        /* gone */
      }
    }
    return out;
  }

  argvOf(pid: number): string[] {
    try {
      return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
    } catch {
      return [];
    }
  }

  commOf(pid: number): string {
    try {
      return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
    } catch {
      return '';
    }
  }

  private setupCgroup(): void {
    if (!existsSync(join(CPUACCT, 'cpuacct.usage'))) {
      this.cgroupError = 'no cgroup-v1 cpuacct hierarchy';
      return;
    }
    const dir = join(CPUACCT, `bench-${this.name}`);
    try {
      mkdirSync(dir, { recursive: true });
      this.cgroup = dir;
      this.sweep();
    } catch (e) {
      this.cgroupError = (e as Error).message;
      this.cgroup = null;
    }
  }

  /** Move every process of the instance into the bench cgroup (children inherit it). */
  sweep(extra: number[] = []): void {
    if (!this.cgroup) return;
    for (const pid of [...this.pids(), ...extra]) {
      try {
        writeFileSync(join(this.cgroup, 'cgroup.procs'), String(pid));
      } catch {
        /* exited */
      }
    }
  }

  /** CPU nanoseconds consumed by the cgroup so far (null without one). */
  cpuNs(): number | null {
    if (!this.cgroup) return null;
    try {
      return Number(readFileSync(join(this.cgroup, 'cpuacct.usage'), 'utf8').trim());
    } catch {
      return null;
    }
  }

  // ----------------------------------------------------------------------------- instance

  exec(argv: string[], timeoutMs = 240_000): Promise<lab.ExecResult> {
    return lab.exec(argv, { name: this.name, cleanEnv: true, env: PATH_ENV, timeoutMs });
  }

  async sh(argv: string[]): Promise<string> {
    const r = await this.exec(argv);
    if (r.exitCode !== 0) throw new Error(`${argv.join(' ')} exited ${r.exitCode}: ${r.stderr.trim()}`);
    return r.stdout;
  }

  /** A file of the instance (null when absent). Resolves symlinks inside the instance. */
  async read(p: string): Promise<string | null> {
    const direct = join(this.root, p);
    try {
      return readFileSync(direct, 'utf8');
    } catch {
      return null;
    }
  }

  exists(p: string): boolean {
    return existsSync(join(this.root, p));
  }

  write(p: string, data: string, mode = 0o644): Promise<void> {
    return lab.writeFileInInstance(p, data, { name: this.name, mode });
  }

  /** `ip -n <inst> ARGS` run from the host (not counted in the instance's CPU). */
  async ipJson<T>(args: string[]): Promise<T> {
    const { execa } = await import('execa');
    const r = await execa('ip', ['-n', this.netns, '-json', ...args], { reject: false });
    // A table that does not exist: ip prints "[" and fails. That is an empty table, not a crash.
    if (r.exitCode !== 0 && /FIB table does not exist/.test(String(r.stderr))) return [] as T;
    return JSON.parse(r.stdout || '[]') as T;
  }
}

export interface IpAddr {
  ifname: string;
  addr_info?: { family: string; local: string; prefixlen: number }[];
}

export function ipv4Map(addrs: IpAddr[]): Map<string, Set<string>> {
  const m = new Map<string, Set<string>>();
  for (const a of addrs) m.set(a.ifname, new Set((a.addr_info ?? []).filter((i) => i.family === 'inet').map((i) => i.local)));
  return m;
}
