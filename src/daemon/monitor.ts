/**
 * Kernel link events without udev: a long-running `ip -o monitor link` child (argv, no shell),
 * restarted with backoff if it dies. Lines are folded into a map ifindex → link, and turned into
 * callbacks: a new ifindex is an add, "Deleted" a remove, a change of (admin UP and carrier)
 * a state change. After a restart the map is diffed against a fresh `ip -o link show`, so links
 * that came or went while no monitor ran are reported too.
 */
import { execa, type ResultPromise } from 'execa';
import { createInterface } from 'node:readline';
import { log } from '../util/log.js';
import { oneLine } from '../util/errors.js';
import { Backoff } from '../util/backoff.js';

export interface LinkLine {
  deleted: boolean;
  index: number;
  ifname: string;
  flags: string[];
  mac?: string;
}

/** Administratively up and with carrier. */
export const linkUp = (l: Pick<LinkLine, 'flags'>): boolean => l.flags.includes('UP') && l.flags.includes('LOWER_UP');

// "Deleted 3: vC@NONE: <BROADCAST,MULTICAST> mtu 1500 ... \    link/ether 02:00:00:aa:bb:cc brd ..."
const LINE_RE = /^(Deleted\s+)?(\d+):\s+([^\s:@]+)(?:@[^\s:]*)?:\s+<([^>]*)>/;
const MAC_RE = /link\/(?:ether|ieee802\.11)\s+([0-9a-fA-F]{2}(?::[0-9a-fA-F]{2}){5})\b/;

/** One line of `ip -o link show` / `ip -o monitor link`; null for anything else. */
export function parseLinkLine(line: string): LinkLine | null {
  const m = LINE_RE.exec(line.trim());
  if (!m) return null;
  const mac = MAC_RE.exec(line)?.[1]?.toLowerCase();
  return { deleted: !!m[1], index: Number(m[2]), ifname: m[3]!, flags: m[4]!.split(',').filter(Boolean), ...(mac ? { mac } : {}) };
}

/**
 * What can take policy routing away without a link event: an address coming or going on an
 * interface (a DHCP client re-acquiring; the kernel drops routes through an address it removes,
 * silently), or a rule or route of ours deleted by someone else (systemd-networkd flushes
 * "foreign" ones when it starts). And what it may have been waiting for: an IPv6 default router
 * learnt from a router advertisement (a NIC's IPv6 table needs it). `ip -o monitor address route
 * rule` lines.
 */
export type RoutingChange =
  | { kind: 'address'; ifname: string; deleted: boolean }
  | { kind: 'ours-deleted'; what: 'rule' | 'route' }
  | { kind: 'router6'; ifname: string };

const ADDR_RE = /^(Deleted\s+)?\d+:\s+([^\s:@]+)\s+inet6?\s+(\S+)/;
/** `default via fe80::… dev X proto ra …` in main (no `table`): the kernel's route from an RA. */
const RA_ROUTE_RE = /^default\s+via\s+fe80:\S*\s+dev\s+([^\s@]+)\s+proto\s+ra\b/;

/** One monitor line as a routing change; null for links, others' routes (but an RA's default), IPv6 link-local churn. */
export function parseRoutingLine(line: string, proto: number): RoutingChange | null {
  const t = line.trim();
  const a = ADDR_RE.exec(t);
  if (a) return a[3]!.toLowerCase().startsWith('fe80:') ? null : { kind: 'address', ifname: a[2]!, deleted: !!a[1] };
  const ra = RA_ROUTE_RE.exec(t);
  if (ra && !/\btable\s/.test(t)) return { kind: 'router6', ifname: ra[1]! };
  if (!/^Deleted\s/.test(t) || !new RegExp(`\\bproto(?:col)?\\s+${proto}\\b`).test(t)) return null;
  return { kind: 'ours-deleted', what: /^Deleted\s+\d+:\s/.test(t) ? 'rule' : 'route' };
}

export interface LinkCallbacks {
  onAdd(link: LinkLine): void;
  onRemove(link: LinkLine): void;
  onRename?(from: LinkLine, to: LinkLine): void;
  onState(link: LinkLine, up: boolean): void;
  /** Also watch addresses, routes and rules (see RoutingChange). */
  onRouting?(change: RoutingChange): void;
}

/** util-linux's setpriv (essential on Debian; everywhere util-linux is). */
export const SETPRIV = '/usr/bin/setpriv';

export interface MonitorOptions {
  ipBin?: string;
  /** setpriv to run the monitor under (null: none, e.g. a test's fake ip). */
  setpriv?: string | null;
  /** Base of the restart backoff (src/util/backoff.ts), up to maxRestartMs. */
  restartMs?: number;
  /** rtnetlink protocol that marks our rules and routes (for onRouting). */
  routingProto?: number;
  maxRestartMs?: number;
}

export class LinkMonitor {
  readonly links = new Map<number, LinkLine>();
  restarts = 0;
  lastError: string | undefined;
  private child: ResultPromise | undefined;
  private stopped = true;
  private loaded = false;
  private buffered: string[] = [];
  /** No listing could be read: a first sighting may be an old link, so it is not an add. */
  private blind = false;
  private readonly backoff: Backoff;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly cb: LinkCallbacks,
    private readonly opts: MonitorOptions = {},
  ) {
    this.backoff = new Backoff({ initialMs: opts.restartMs ?? 1000, maxMs: opts.maxRestartMs ?? 30_000 });
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  get running(): boolean {
    return !!this.child && this.child.exitCode === null;
  }

  async start(): Promise<void> {
    this.stopped = false;
    await this.spawn();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    this.child?.kill('SIGTERM');
    this.child = undefined;
  }

  /** Feed one line (from the monitor, or a test). */
  feed(line: string): void {
    if (!this.loaded) {
      this.buffered.push(line);
      return;
    }
    const l = parseLinkLine(line);
    if (!l) {
      const c = this.cb.onRouting ? parseRoutingLine(line, this.opts.routingProto ?? 199) : null;
      if (c) this.cb.onRouting!(c);
      return;
    }
    const prev = this.links.get(l.index);
    if (l.deleted) {
      this.links.delete(l.index);
      this.cb.onRemove({ ...l, mac: l.mac ?? prev?.mac, ifname: prev?.ifname ?? l.ifname });
      return;
    }
    this.links.set(l.index, l);
    if (!prev) return this.blind ? undefined : this.cb.onAdd(l);
    if (prev.ifname !== l.ifname) this.cb.onRename?.(prev, l);
    if (linkUp(prev) !== linkUp(l)) this.cb.onState(l, linkUp(l));
  }

  /** Replace the map with a full listing; report what changed since the last one (not the first time). */
  load(listing: string, report: boolean, blind = false): void {
    const now = new Map<number, LinkLine>();
    for (const line of listing.split('\n')) {
      const l = parseLinkLine(line);
      if (l && !l.deleted) now.set(l.index, l);
    }
    const before = new Map(this.links);
    this.links.clear();
    for (const [i, l] of now) this.links.set(i, l);
    if (report) {
      for (const [i, l] of before) if (!now.has(i)) this.cb.onRemove(l);
      for (const [i, l] of now) {
        const p = before.get(i);
        if (!p) this.cb.onAdd(l);
        else if (linkUp(p) !== linkUp(l)) this.cb.onState(l, linkUp(l));
      }
    }
    this.loaded = true;
    this.blind = blind;
    const pending = this.buffered;
    this.buffered = [];
    for (const line of pending) this.feed(line);
  }

  private async spawn(): Promise<void> {
    const ip = this.opts.ipBin ?? 'ip';
    const startedAt = Date.now();
    const report = this.restarts > 0 || this.links.size > 0;
    this.loaded = false;
    this.buffered = [];
    // Monitor first, listing second: nothing falls between the two (duplicates are harmless).
    const objects = this.cb.onRouting ? ['link', 'address', 'route', 'rule'] : ['link'];
    // setpriv's parent-death signal: the monitor dies with a daemon killed by -9 (execa's cleanup
    // cannot run then, and the unit's KillMode=process leaves our children alone for the DHCP
    // clients' sake). setpriv execs ip: same pid, same output.
    const argv = [ip, '-o', 'monitor', ...objects];
    const [cmd, ...args] = this.opts.setpriv === null ? argv : [this.opts.setpriv ?? SETPRIV, '--pdeathsig', 'KILL', '--', ...argv];
    const child = execa(cmd!, args, { buffer: false, reject: false, stdin: 'ignore', stderr: 'pipe', cleanup: true });
    this.child = child;
    child.stderr?.on('data', (d: Buffer) => (this.lastError = d.toString().trim().split('\n').pop()));
    createInterface({ input: child.stdout! }).on('line', (line) => {
      if (this.child === child) this.feed(line);
    });
    void child.then((r) => {
      if (this.child !== child || this.stopped) return;
      this.child = undefined;
      const why = r.signal ?? `exit ${r.exitCode}`;
      if (Date.now() - startedAt > 60_000) this.backoff.reset(); // it ran fine for a while
      const delay = Math.round(this.backoff.next());
      log('warn', 'ip monitor exited; restarting', { why, in_ms: delay, error: this.lastError });
      this.timer = setTimeout(() => {
        this.restarts++;
        void this.spawn().catch((e) => log('error', 'ip monitor restart failed', { error: oneLine(e) }));
      }, delay);
    });
    try {
      const r = await execa(ip, ['-o', 'link', 'show'], { reject: false, stdin: 'ignore', timeout: 10_000 });
      if (r.exitCode !== 0) throw new Error(`ip -o link show failed: ${String(r.stderr).trim()}`);
      this.load(String(r.stdout), report);
    } catch (e) {
      this.lastError = oneLine(e);
      // Without a listing every line would look like a new link: start from what the monitor says.
      this.load('', false, true);
      throw e;
    }
  }
}
