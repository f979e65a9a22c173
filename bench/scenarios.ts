/**
 * The scenarios, each measured the same way for every contender (see Meter): the time from the
 * kernel's uevent (or the metadata change) until every address is on its interface, as seen
 * from outside the instance; metadata requests and crawls; udev's processing time per event;
 * CPU of everything in the instance; peak RSS of node/python processes; correctness.
 */
import * as lab from '../scripts/lab/index.js';
import type { Contender, Handled } from './contenders.js';
import type { LabCtx, IpAddr } from './lib/labctx.js';
import { ipv4Map } from './lib/labctx.js';
import { RssSampler, type AddrWatcher } from './lib/watch.js';
import { routeProblems, leftovers, type NicExpect } from './lib/checks.js';

export type Status = 'ok' | 'failed' | 'not-supported' | 'not-available' | 'skipped' | 'error';

export interface Stat {
  n: number;
  median: number;
  max: number;
}

/** One scenario, one contender, one run. Times in ms (epoch-based), CPU in s, memory in MB. */
export interface Measurement {
  mode: lab.LabMode;
  scenario: string;
  contender: string;
  run: number;
  lab: string;
  status: Status;
  /** All addresses configured, routes (ours) present, nothing left after remove; null = not applicable. */
  correct: boolean | null;
  problems: string[];
  /** Headline time: kernel event (secondary IP: metadata change) → every address configured
   *  (remove: → the handler finished). For a failure: → the handler gave up. */
  timeMs: number | null;
  /** Kernel event → the contender's last record/run for these events ended. */
  handledMs: number | null;
  /** Lag scenario: metadata visible → every address configured. */
  afterMetadataMs?: number | null;
  /** Secondary IP, contenders without a poller: time after a manual trigger. */
  triggeredMs?: number | null;
  /** Secondary IP, contenders with a poller: each metadata change → address configured / removed (ms). */
  samplesMs?: { add: number[]; remove: number[] };
  /** Secondary IP, contenders with a poller: IMDS requests per minute over an idle window (daemon running, nothing changing). */
  idle?: { requests: number; tokenPuts: number; seconds: number; perMinute: number };
  imdsRequests: number | null;
  tokenPuts: number | null;
  /** GETs of …/meta-data/network/ (the listing every crawl reads once). */
  crawls: number | null;
  /** udevd: kernel uevent → event processed (all rules and RUN programs returned), per event. */
  udevMs: Stat | null;
  /** Ours: the udev program's own `duration_ms=` (from node's process start), per event. */
  hookMs: Stat | null;
  /** CPU seconds of every process of the instance (cgroup cpuacct), scenario start → end. */
  cpuS: number | null;
  /** Peak of the summed VmRSS of node/python/cloud-init processes in the instance. */
  peakRssMb: number | null;
  /** Peak VmRSS of the largest single such process. */
  peakProcRssMb: number | null;
  /** Daemon only: CPU s of its node and python processes and their reaped children; `other` = the
   *  rest of cpuS (udev, hooks, DHCP clients and scripts, the lab's monitors). */
  cpuParts?: Record<string, number>;
  /** churn: node + python PSS/RSS idle after the first round (warm) and after the last (end). */
  memMb?: { warm?: { pss: number; rss: number }; end?: { pss: number; rss: number } };
  events: number;
  notes: string[];
}

export interface Env {
  ctx: LabCtx;
  contender: Contender;
  watcher: AddrWatcher;
  run: number;
  /** Shared between scenarios of one lab (e.g. the NIC the lag scenario attached). */
  state: { lagNic?: lab.NicInfo; addNic?: lab.NicInfo };
}

export function stat(xs: number[]): Stat | null {
  if (!xs.length) return null;
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  const median = s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
  return { n: s.length, median: round(median), max: round(s[s.length - 1]!) };
}

const round = (x: number, d = 1) => Math.round(x * 10 ** d) / 10 ** d;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** EC2: GETs of the network listing; OpenStack (whose crawls also read EC2's tree): reads of network_data.json. */
function crawlsOf(st: lab.ImdsStats): number {
  const count = (re: RegExp) => Object.entries(st.byPath).filter(([p]) => re.test(p)).reduce((n, [, c]) => n + c, 0);
  const os = count(/^\/openstack\/[^/]+\/network_data\.json$/);
  return os || count(/\/meta-data\/network\/?$/);
}

/** Counters and samplers around one scenario. */
export class Meter {
  private cpu0: number | null = null;
  private mono0 = 0;
  wall0 = 0;
  private hookLines0 = 0;
  private rss: RssSampler;

  constructor(private env: Env) {
    this.rss = new RssSampler(env.ctx);
  }

  private parts0: Record<string, number> | null = null;

  async begin(): Promise<void> {
    const { ctx } = this.env;
    // Long-lived processes only (the daemon and its bridge); one-shot processes come and go.
    this.parts0 = this.env.contender.id === 'daemon' ? this.rss.cpuParts() : null;
    await lab.imdsStats({ name: ctx.name, reset: true });
    this.hookLines0 = ((await ctx.read('/var/log/cloud-hotplug.log')) ?? '').split('\n').length - 1;
    ctx.sweep();
    this.cpu0 = ctx.cpuNs();
    this.rss.start();
    this.mono0 = lab.monotonicNow();
    this.wall0 = Date.now();
  }

  /**
   * Stop counting and record the figures in `m`; `ifnames`/`actions` select the uevents of this
   * scenario. Returns when the first of them reached the kernel (epoch ms), null without one.
   */
  async end(m: Measurement, ifnames: string[], actions: string[]): Promise<number | null> {
    const { ctx, contender } = this.env;
    this.rss.stop();
    const cpu1 = ctx.cpuNs();
    const st = await lab.imdsStats({ name: ctx.name });
    const evs = (await lab.udevEvents({ name: ctx.name })).filter(
      (e) => e.subsystem === 'net' && e.monotonic >= this.mono0 - 0.001 && !!e.ifname && ifnames.includes(e.ifname) && actions.includes(e.action),
    );
    const kernel = evs.filter((e) => e.source === 'kernel');
    const udevMs: number[] = [];
    for (const k of kernel) {
      const u = evs.find((e) => e.source === 'udev' && e.seqnum === k.seqnum);
      if (u) udevMs.push((u.monotonic - k.monotonic) * 1000);
    }
    const kernelT0 = kernel.length ? Math.min(...kernel.map((e) => e.monotonic)) * 1000 + ctx.monoOffsetMs : null;
    let hookMs: number[] = [];
    if (contender.hookLog) {
      const lines = ((await ctx.read('/var/log/cloud-hotplug.log')) ?? '').split('\n').slice(this.hookLines0);
      hookMs = lines
        .filter((l) => l.includes('hook queued') && actions.some((a) => l.includes(`action=${a} `)) && ifnames.some((i) => l.includes(`iface=${i} `)))
        .map((l) => Number(/ duration_ms=([\d.]+)/.exec(l)?.[1]))
        .filter((x) => Number.isFinite(x));
    }
    if (this.parts0 && m.cpuS !== undefined) {
      const p1 = this.rss.cpuParts();
      const parts: Record<string, number> = {};
      for (const [k, v] of Object.entries(p1)) if (k in this.parts0) parts[k] = round(v - this.parts0[k]!, 2);
      m.cpuParts = parts;
    }
    Object.assign(m, {
      events: kernel.length,
      imdsRequests: st.total,
      tokenPuts: st.tokenPuts,
      crawls: crawlsOf(st),
      udevMs: stat(udevMs),
      hookMs: contender.hookLog ? stat(hookMs) : null,
      cpuS: this.cpu0 !== null && cpu1 !== null ? round((cpu1 - this.cpu0) / 1e9, 2) : null,
      peakRssMb: round(this.rss.peakKb / 1024),
      peakProcRssMb: round(this.rss.peakProcKb / 1024),
    });
    if (m.cpuParts && m.cpuS !== null) m.cpuParts.other = round(m.cpuS - Object.values(m.cpuParts).reduce((a, b) => a + b, 0), 2);
    return kernelT0;
  }
}

/** What says which measurement this is; everything measured starts empty. */
export type MeasurementHead = Pick<Measurement, 'mode' | 'scenario' | 'contender' | 'run' | 'lab' | 'status' | 'notes'>;

/** A measurement with nothing measured yet (fields in the order the results files list them). */
export function emptyMeasurement(h: MeasurementHead): Measurement {
  return {
    mode: h.mode,
    scenario: h.scenario,
    contender: h.contender,
    run: h.run,
    lab: h.lab,
    status: h.status,
    correct: null,
    problems: [],
    timeMs: null,
    handledMs: null,
    imdsRequests: null,
    tokenPuts: null,
    crawls: null,
    udevMs: null,
    hookMs: null,
    cpuS: null,
    peakRssMb: null,
    peakProcRssMb: null,
    events: 0,
    notes: h.notes,
  };
}

export function base(env: Env, scenario: string): Measurement {
  return emptyMeasurement({ mode: env.ctx.mode, scenario, contender: env.contender.id, run: env.run, lab: env.ctx.name, status: 'ok', notes: [] });
}

export function skipped(m: Measurement, why: string): Measurement {
  m.status = 'skipped';
  m.notes.push(why);
  return m;
}

/** Wait until the contender handled `action` for each interface (or the deadline). */
async function waitHandled(env: Env, ifnames: string[], action: string, sinceMs: number, deadline: number): Promise<Map<string, Handled>> {
  for (;;) {
    const got = new Map<string, Handled>();
    for (const h of await env.contender.handled(env.ctx, sinceMs)) if (h.action === action && ifnames.includes(h.iface)) got.set(h.iface, h);
    if (got.size === ifnames.length || Date.now() > deadline) return got;
    await sleep(100);
  }
}

export async function addrSnapshot(env: Env): Promise<Map<string, Set<string>>> {
  return ipv4Map(await env.ctx.ipJson<IpAddr[]>(['addr', 'show']));
}

export const expectOf = (nics: lab.NicInfo[]): NicExpect[] => nics.map((n) => ({ ifname: n.ifname, ips: n.ips, deviceNumber: n.deviceNumber }));

/**
 * Attach (by `attach()`), then wait for every address and for the contender's records.
 * The wait on addresses stops early once the contender finished every event (2 s grace).
 */
async function measureAdd(env: Env, scenario: string, capMs: number, attach: () => Promise<lab.NicInfo[]>): Promise<{ m: Measurement; nics: lab.NicInfo[] }> {
  const m = base(env, scenario);
  const meter = new Meter(env);
  await meter.begin();
  const tAttach = Date.now();
  const nics = await attach();
  const exp = expectOf(nics);
  const names = nics.map((n) => n.ifname);
  const deadline = tAttach + capMs;
  let allHandledAt = 0;
  const addrAt = await env.watcher.waitAll(exp, capMs, async () => {
    const h = await env.contender.handled(env.ctx, meter.wall0);
    const done = names.every((i) => h.some((x) => x.iface === i && x.action === 'add'));
    if (done && !allHandledAt) allHandledAt = Date.now();
    return done && Date.now() - allHandledAt > 2000;
  });
  const handled = await waitHandled(env, names, 'add', meter.wall0, Math.max(deadline, Date.now() + 5000));
  await sleep(200);
  const t0 = (await meter.end(m, names, ['add'])) ?? tAttach;
  const doneTimes = [...handled.values()].map((h) => h.doneMs);
  m.handledMs = handled.size === names.length ? Math.round(Math.max(...doneTimes) - t0) : null;
  // correctness: a fresh look at the addresses, the contender's own verdicts, routes
  const snap = await addrSnapshot(env);
  for (const e of exp) for (const ip of e.ips) if (!snap.get(e.ifname)?.has(ip)) m.problems.push(`${e.ifname} lacks ${ip}`);
  for (const i of names) {
    const h = handled.get(i);
    if (!h) m.problems.push(`${i}: add not handled within ${Math.round(capMs / 1000)} s`);
    else if (!h.ok) m.problems.push(`${i}: ${h.detail}`);
  }
  if (env.contender.routes && !m.problems.length) m.problems.push(...(await routeProblems(env.ctx, exp)));
  m.correct = m.problems.length === 0;
  if (addrAt !== null) {
    m.timeMs = Math.round(addrAt - t0);
  } else {
    m.status = 'failed';
    if (doneTimes.length) {
      m.timeMs = Math.round(Math.max(...doneTimes) - t0);
      m.notes.push(`gave up after ${(m.timeMs / 1000).toFixed(1)} s`);
    } else m.notes.push(`nothing after ${Math.round(capMs / 1000)} s (cap)`);
  }
  return { m, nics };
}

// ------------------------------------------------------------------------------- scenarios

export interface Scenario {
  id: string;
  label: string;
  run(env: Env): Promise<Measurement>;
}

/** Cap of a single event's wait: upstream on the faithful lab fails each event after ~50 s. */
export const EVENT_CAP_MS = 70_000;

export const add1: Scenario = {
  id: 'add1',
  label: 'one NIC add',
  async run(env) {
    const { m, nics } = await measureAdd(env, this.id, EVENT_CAP_MS, async () => [await lab.attach({ name: env.ctx.name, deviceNumber: 1 })]);
    env.state.addNic = nics[0];
    return m;
  },
};

export const remove1: Scenario = {
  id: 'remove1',
  label: 'one NIC remove',
  async run(env) {
    const m = base(env, this.id);
    let nic = env.state.addNic;
    if (!nic) return skipped(m, 'no NIC from add1');
    const meter = new Meter(env);
    await meter.begin();
    const tDetach = Date.now();
    await lab.detach(nic.ifname, { name: env.ctx.name });
    const handled = await waitHandled(env, [nic.ifname], 'remove', meter.wall0, tDetach + EVENT_CAP_MS);
    await sleep(200);
    const t0 = (await meter.end(m, [nic.ifname], ['remove'])) ?? tDetach;
    const h = handled.get(nic.ifname);
    if (!h) {
      m.status = 'failed';
      m.problems.push(`remove not handled within ${EVENT_CAP_MS / 1000} s`);
    } else {
      m.timeMs = m.handledMs = Math.round(h.doneMs - t0);
      if (!h.ok) {
        m.status = 'failed';
        m.problems.push(h.detail);
      }
    }
    m.problems.push(...(await leftovers(env.ctx, nic.ifname, nic.ips, nic.deviceNumber, env.contender.routes)));
    m.correct = m.problems.length === 0;
    env.state.addNic = undefined;
    return m;
  },
};

export const LAG_S = 1.5;

export const lag: Scenario = {
  id: 'lag1.5',
  label: `one NIC, metadata ${LAG_S} s late`,
  async run(env) {
    const { m, nics } = await measureAdd(env, this.id, EVENT_CAP_MS, async () => [await lab.attach({ name: env.ctx.name, deviceNumber: 2, lagSeconds: LAG_S })]);
    const nic = nics[0]!;
    env.state.lagNic = nic;
    if (m.status === 'ok' && m.timeMs !== null && nic.visibleAt) {
      // timeMs counts from the kernel event; the address time on the epoch clock:
      const addrAt = env.watcher.allSince(expectOf([nic]));
      m.afterMetadataMs = addrAt !== null ? Math.round(addrAt - nic.visibleAt) : null;
    }
    return m;
  },
};

export function multi(n: number, ips = 0): Scenario {
  return {
    id: ips ? `nics${n}x${ips}` : `nics${n}`,
    label: ips ? `${n} NICs × ${ips} secondary IPs at once` : `${n} NICs at once`,
    async run(env) {
      const { m } = await measureAdd(env, this.id, 60_000 + n * (6_000 + ips * 500), () => lab.attachMany(n, { name: env.ctx.name, ips }));
      return m;
    },
  };
}

/** PSS and RSS of node + python once the daemon has been idle for IDLE_MEM_MS (it gives memory back by then: Python 2 s after its last heavy call, node in its next quiet 2 s interval). */
const IDLE_MEM_MS = 6000;
async function idleMem(env: Env): Promise<{ pss: number; rss: number }> {
  await sleep(IDLE_MEM_MS);
  const x = new RssSampler(env.ctx).memNow();
  return { pss: x.pssMb, rss: x.rssMb };
}

/** Events of the churn scenario: enough to see the daemon's memory grow if it leaks. */
export const CHURN_EVENTS = 500;
const CHURN_NICS = 16;

/**
 * Memory churn (the daemon only: it is what stays up): rounds of 16 NICs attached at once, then
 * detached, until CHURN_EVENTS uevents (add + remove) were handled. Its time is the whole run;
 * the lab's idle PSS before and after (runner.ts) is what the goal judges.
 */
export const churn: Scenario = {
  id: 'churn',
  label: `${CHURN_EVENTS} events (16 NICs attached, then detached, in rounds)`,
  async run(env) {
    const m = base(env, this.id);
    if (env.contender.id !== 'daemon') return skipped(m, 'the daemon only (memory over many events)');
    const meter = new Meter(env);
    await meter.begin();
    const t0 = Date.now();
    const names = new Set<string>();
    const rounds = Math.ceil(CHURN_EVENTS / (2 * CHURN_NICS));
    for (let r = 0; r < rounds && !m.problems.length; r++) {
      const since = Date.now();
      const nics = await lab.attachMany(CHURN_NICS, { name: env.ctx.name });
      const ifs = nics.map((n) => n.ifname);
      ifs.forEach((i) => names.add(i));
      if ((await env.watcher.waitAll(expectOf(nics), 60_000)) === null) m.problems.push(`round ${r + 1}: not every address configured within 60 s`);
      for (const i of ifs) await lab.detach(i, { name: env.ctx.name });
      const got = await waitHandled(env, ifs, 'remove', since, Date.now() + 60_000);
      if (got.size !== ifs.length) m.problems.push(`round ${r + 1}: ${ifs.length - got.size} removes not handled within 60 s`);
      // Warm: every module loaded, every code path run once; growth from here on is what stays.
      if (r === 0) m.memMb = { warm: await idleMem(env) };
    }
    m.memMb = { ...m.memMb, end: await idleMem(env) };
    await meter.end(m, [...names], ['add', 'remove']);
    m.timeMs = Date.now() - t0;
    m.correct = m.problems.length === 0;
    if (!m.correct) m.status = 'failed';
    return m;
  },
};
