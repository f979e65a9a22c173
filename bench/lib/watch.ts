/**
 * Observation from outside the instance, so nothing the bench does runs (or is counted) in it:
 * - AddrWatcher: `ip -n <inst> -o monitor address` (event-driven: the host clock when the kernel
 *   announced each IPv4 address) backed by an `ip -json addr` poll every POLL_MS.
 * - RssSampler: VmRSS of the node/python processes in the instance's netns every SAMPLE_MS.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import type { LabCtx, IpAddr } from './labctx.js';

const POLL_MS = 200;
const SAMPLE_MS = 100;

export interface Expect {
  ifname: string;
  ips: string[];
}

export class AddrWatcher {
  /** ifname → ip → epoch ms it (last) appeared. */
  private seen = new Map<string, Map<string, number>>();
  /** `ifname ip` → epoch ms it was (last) seen deleted. */
  private gone = new Map<string, number>();
  private mon: ChildProcess | null = null;
  private timer: NodeJS.Timeout | null = null;
  private polling = false;

  constructor(private ctx: LabCtx) {}

  async start(): Promise<void> {
    const mon = spawn('ip', ['-n', this.ctx.netns, '-o', 'monitor', 'address'], { stdio: ['ignore', 'pipe', 'ignore'] });
    this.mon = mon;
    createInterface({ input: mon.stdout! }).on('line', (l) => this.onLine(l, Date.now()));
    await new Promise((r) => setTimeout(r, 50));
    await this.poll();
    this.timer = setInterval(() => void this.poll(), POLL_MS);
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    if (this.mon && this.mon.exitCode === null) this.mon.kill('SIGTERM');
    this.mon = null;
  }

  private onLine(line: string, t: number): void {
    // "4: eth1    inet 10.0.2.11/24 brd ... scope global dynamic eth1\ ..." / "Deleted 4: eth1 inet ..."
    const m = /^(Deleted\s+)?\d+:\s+(\S+)\s+inet\s+([\d.]+)\//.exec(line);
    if (!m) return;
    const ifname = m[2]!;
    const ip = m[3]!;
    const per = this.seen.get(ifname) ?? new Map<string, number>();
    this.seen.set(ifname, per);
    if (m[1]) {
      if (per.delete(ip)) this.gone.set(`${ifname} ${ip}`, t);
    } else if (!per.has(ip)) {
      per.set(ip, t);
      this.gone.delete(`${ifname} ${ip}`);
    }
  }

  private async poll(): Promise<void> {
    if (this.polling) return;
    this.polling = true;
    try {
      const now = Date.now();
      const addrs = await this.ctx.ipJson<IpAddr[]>(['addr', 'show']).catch(() => null);
      if (!addrs) return;
      const present = new Map<string, Set<string>>();
      for (const a of addrs) present.set(a.ifname, new Set((a.addr_info ?? []).filter((i) => i.family === 'inet').map((i) => i.local)));
      for (const [ifname, ips] of present) {
        const per = this.seen.get(ifname) ?? new Map<string, number>();
        this.seen.set(ifname, per);
        for (const ip of ips) if (!per.has(ip)) (per.set(ip, now), this.gone.delete(`${ifname} ${ip}`));
        for (const ip of [...per.keys()]) if (!ips.has(ip) && (per.get(ip) ?? 0) < now - 1000) (per.delete(ip), this.gone.set(`${ifname} ${ip}`, now));
      }
      for (const [ifname, per] of this.seen) if (!present.has(ifname)) for (const [ip, t] of per) if (t < now - 1000) per.delete(ip);
    } finally {
      this.polling = false;
    }
  }

  /** Epoch ms when the last of the expected addresses appeared, or null if one is missing. */
  allSince(exp: Expect[]): number | null {
    let last = 0;
    for (const e of exp) {
      const per = this.seen.get(e.ifname);
      for (const ip of e.ips) {
        const t = per?.get(ip);
        if (t === undefined) return null;
        last = Math.max(last, t);
      }
    }
    return last;
  }

  missing(exp: Expect[]): string[] {
    const out: string[] = [];
    for (const e of exp) for (const ip of e.ips) if (!this.seen.get(e.ifname)?.has(ip)) out.push(`${e.ifname}:${ip}`);
    return out;
  }

  /** Wait until every expected address is gone: epoch ms when the last of them went, or null at the timeout. */
  async waitGone(exp: Expect[], timeoutMs: number): Promise<number | null> {
    const end = Date.now() + timeoutMs;
    for (;;) {
      let last: number | null = 0;
      for (const e of exp) {
        for (const ip of e.ips) {
          const t = this.seen.get(e.ifname)?.has(ip) ? undefined : this.gone.get(`${e.ifname} ${ip}`);
          if (t === undefined) last = null;
          else if (last !== null) last = Math.max(last, t);
        }
      }
      if (last !== null) return last;
      if (Date.now() > end) return null;
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  /** Wait until every expected address is present (or `until()` says stop, or the timeout). */
  async waitAll(exp: Expect[], timeoutMs: number, until?: () => Promise<boolean>): Promise<number | null> {
    const end = Date.now() + timeoutMs;
    let n = 0;
    for (;;) {
      const t = this.allSince(exp);
      if (t !== null) return t;
      if (Date.now() > end) return null;
      if (until && ++n % 10 === 0 && (await until())) return this.allSince(exp);
      await new Promise((r) => setTimeout(r, 20));
    }
  }
}

const WATCHED = /^(node|python3?(\.\d+)?|cloud-init|hotplug)$/;

export class RssSampler {
  peakKb = 0;
  /** Largest single process seen. */
  peakProcKb = 0;
  peakByComm: Record<string, number> = {};
  samples = 0;
  private timer: NodeJS.Timeout | null = null;

  constructor(private ctx: LabCtx) {}

  /** One sample: the summed VmRSS (kB) of node/python processes in the instance now. */
  sampleNow(): { totalKb: number; procs: { pid: number; comm: string; kb: number }[] } {
    const procs: { pid: number; comm: string; kb: number }[] = [];
    for (const pid of this.ctx.pids()) {
      const comm = this.ctx.commOf(pid);
      if (!WATCHED.test(comm)) continue;
      try {
        const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
        if (m) procs.push({ pid, comm, kb: Number(m[1]) });
      } catch {
        /* gone */
      }
    }
    return { totalKb: procs.reduce((s, p) => s + p.kb, 0), procs };
  }

  /**
   * Memory of the node/python processes in the instance now (the idle daemon and its bridge):
   * VmRSS and the proportional set size (Pss of /proc/PID/smaps_rollup: shared pages divided by
   * their sharers, so node and Python's common libraries are not counted twice), in MB.
   */
  memNow(): { rssMb: number; pssMb: number; procs: number; pssByComm: Record<string, number> } {
    let pssKb = 0;
    const byComm: Record<string, number> = {};
    const s = this.sampleNow();
    for (const p of s.procs) {
      try {
        const kb = Number(/^Pss:\s+(\d+) kB/m.exec(readFileSync(`/proc/${p.pid}/smaps_rollup`, 'utf8'))?.[1] ?? 0);
        pssKb += kb;
        byComm[p.comm] = (byComm[p.comm] ?? 0) + kb;
      } catch {
        /* gone */
      }
    }
    const mb = (kb: number) => Math.round((kb / 1024) * 10) / 10;
    return { rssMb: mb(s.totalKb), pssMb: mb(pssKb), procs: s.procs.length, pssByComm: Object.fromEntries(Object.entries(byComm).map(([k, v]) => [k, mb(v)])) };
  }

  /**
   * CPU seconds of the long-lived node and python processes in the instance (the daemon and its
   * bridge): their own, and their reaped children's (node: ip, flock, …; python: ifup and what it
   * waits for), from /proc/PID/stat. Compared between two points, with the cgroup total beside
   * it, the rest is udev, the hooks, DHCP clients and their scripts.
   */
  cpuParts(): Record<string, number> {
    const hz = 100; // USER_HZ on Linux
    const out: Record<string, number> = {};
    for (const p of this.sampleNow().procs) {
      try {
        const st = readFileSync(`/proc/${p.pid}/stat`, 'utf8');
        const f = st.slice(st.lastIndexOf(')') + 2).split(' ').map(Number);
        // after the comm: state(0) … utime(11) stime(12) cutime(13) cstime(14)
        const name = p.comm.startsWith('python') ? 'python' : p.comm;
        out[`${name}`] = (out[name] ?? 0) + (f[11]! + f[12]!) / hz;
        out[`${name} children`] = (out[`${name} children`] ?? 0) + (f[13]! + f[14]!) / hz;
      } catch {
        /* gone */
      }
    }
    return out;
  }

  start(): void {
    const tick = () => {
      const s = this.sampleNow();
      this.samples++;
      this.peakKb = Math.max(this.peakKb, s.totalKb);
      for (const p of s.procs) {
        this.peakByComm[p.comm] = Math.max(this.peakByComm[p.comm] ?? 0, p.kb);
        this.peakProcKb = Math.max(this.peakProcKb, p.kb);
      }
    };
    tick();
    this.timer = setInterval(tick, SAMPLE_MS);
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }
}
