/**
 * Fakes for unit tests of the pipeline (no Python, no namespaces, milliseconds each): a cloud whose
 * metadata lists NICs (some only after a few probes), a bridge over it that can die on a chosen
 * call, an in-memory queue and recorder, and a network stack and routing stage that log their calls.
 */
import { BridgeError, type Bridge, type InstanceSummary, type NetInterface, type NicMeta } from '../../bridge/index.js';
import { defaultConfig, type Config } from '../../src/config.js';
import type { HotplugEvent } from '../../src/events/event.js';
import type { EventRecord, KnownInterfaces, LastApply, Recorder } from '../../src/record/index.js';
import type { BridgeAccess, EventQueue, PipelineDeps, RoutingStage } from '../../src/pipeline/deps.js';
import type { NetworkStack } from '../../src/stack/network-stack.js';
import { isBridgeFailure } from '../../bridge/manager.js';

export const mac = (n: number): string => `02:00:00:00:00:${n.toString(16).padStart(2, '0')}`;

export class FakeCloud {
  /** MAC → NIC in metadata now. */
  readonly nics = new Map<string, { name: string; device_number: number }>();
  /** MAC → NIC that metadata lists only after this many more probes. */
  readonly late = new Map<string, { name: string; device_number: number; probes: number }>();
  readonly calls: string[] = [];

  list(name: string, n: number, device_number = n): this {
    this.nics.set(mac(n), { name, device_number });
    return this;
  }

  summary(): InstanceSummary {
    const nics: Record<string, NicMeta> = {};
    for (const [m, x] of this.nics) {
      nics[m] = { mac: m, device_number: x.device_number, network_card: 0, interface_id: null, ipv4s: [], ipv6s: [], subnet_ipv4_cidr: null, subnet_ipv6_cidrs: [], ipv4_prefixes: [], ipv6_prefixes: [] };
    }
    return { datasource: 'DataSourceFake', dsname: 'Fake', instance_id: 'i-fake', platform: null, subplatform: null, cloud_name: null, macs: [...this.nics.keys()], primary_mac: null, nics, hotplug: { enabled: true, reason: 'fake' } };
  }

  view(): { network_config: { version: number; config: Record<string, unknown>[] }; interfaces: NetInterface[] } {
    const interfaces = [...this.nics].map(([m, x]) => ({ name: x.name, mac: m, id: x.name }));
    return { network_config: { version: 1, config: interfaces.map((i) => ({ type: 'physical', name: i.name, mac_address: i.mac })) }, interfaces };
  }

  /** A bridge over this cloud; `dieOn` makes that call fail as a dead Python would, once. */
  bridge(dieOn?: string): Bridge {
    let died = false;
    const call = (name: string) => {
      this.calls.push(name);
      if (name === dieOn && !died) {
        died = true;
        throw new BridgeError(`${name}: python bridge process exited (SIGKILL)`, 'BridgeDead');
      }
    };
    const crawl = async () => {
      call('refreshNetwork');
      return { supported: true as const, duration_ms: 1, summary: this.summary(), ...this.view() };
    };
    const fake: Partial<Bridge> = {
      pythonPid: undefined,
      open: async () => (call('open'), { obj_pkl: 'obj.pkl', summary: this.summary(), stack: {} as never }),
      summary: async () => (call('summary'), this.summary()),
      networkConfig: async () => (call('networkConfig'), this.view()),
      refreshNetwork: crawl,
      refresh: async () => crawl(),
      store: async () => (call('store'), { summary: this.summary() }),
      applyNetwork: async () => (call('applyNetwork'), { failed: false, duration_ms: 1, interfaces: this.view().interfaces }),
      bringUp: async (names: string[]) => (call(`bringUp ${names.join(',')}`), Object.fromEntries(names.map((n) => [n, true]))),
      bringDown: async (n: string) => (call(`bringDown ${n}`), { done: true, activator: 'FakeActivator' }),
      rederive: async () => (call('rederive'), { summary: this.summary(), ...this.view() }),
      probeMacs: async () => {
        call('probeMacs');
        for (const [m, x] of this.late) if (--x.probes <= 0) (this.late.delete(m), this.nics.set(m, x));
        return { supported: true, macs: [...this.nics.keys()], others: [], static: false };
      },
      setSources: async (m: string | null) => (call('setSources'), { md_fallback: m }),
      close: async () => {},
    };
    return fake as Bridge;
  }
}

/** The manager's contract with fresh fake bridges: a bridge failure restarts (a new bridge) and re-runs. */
export function fakeAccess(cloud: FakeCloud, dieOn?: string): BridgeAccess & { starts: number } {
  const access = {
    starts: 0,
    current: undefined as Bridge | undefined,
    async withBridge<T>(_what: string, fn: (b: Bridge) => Promise<T>, opts: { attempts?: number; onRestart?: (i: { kind: string; reason: string; attempt: number }) => void } = {}): Promise<T> {
      for (let attempt = 1; ; attempt++) {
        if (!access.current) (access.current = cloud.bridge(access.starts === 0 ? dieOn : undefined)), access.starts++;
        try {
          return await fn(access.current);
        } catch (e) {
          if (!isBridgeFailure(e) || attempt >= (opts.attempts ?? 3)) throw e;
          access.current = undefined;
          opts.onRestart?.({ kind: e.kind, reason: e.message, attempt });
        }
      }
    },
  };
  return access;
}

export class MemoryQueue implements EventQueue {
  events: HotplugEvent[] = [];
  acked: string[] = [];
  async take() {
    return { events: [...this.events] };
  }
  async list() {
    return [...this.events];
  }
  async ack(ids: Iterable<string>) {
    const s = new Set(ids);
    this.acked.push(...s);
    const before = this.events.length;
    this.events = this.events.filter((e) => !s.has(e.id));
    return before - this.events.length;
  }
  async pending() {
    return this.events.length;
  }
}

export class MemoryRecorder implements Recorder {
  events: EventRecord[] = [];
  applies: LastApply[] = [];
  known: KnownInterfaces = {};
  async event(r: EventRecord) {
    this.events.push(r);
  }
  async apply(r: LastApply) {
    this.applies.push(r);
  }
  async interfaces() {
    return { ...this.known };
  }
  async remember(n: string, i: KnownInterfaces[string]) {
    this.known[n] = i;
  }
  async forget(n: string) {
    delete this.known[n];
  }
}

export class FakeStack implements NetworkStack {
  readonly name = 'fake';
  readonly calls: string[] = [];
  down: string[] = [];
  async renderedButDown(names: readonly string[]) {
    return names.filter((n) => this.down.includes(n));
  }
  async scrub(ifname: string) {
    this.calls.push(`scrub ${ifname}`);
    return { killed: 0, files: 0 };
  }
  async leaseGateway() {
    return undefined;
  }
  async dhcpClients() {
    return [];
  }
}

export interface Fakes {
  deps: PipelineDeps;
  cloud: FakeCloud;
  queue: MemoryQueue;
  records: MemoryRecorder;
  stack: FakeStack;
  routing: RoutingStage & { calls: string[] };
  links: Set<string>;
  access: ReturnType<typeof fakeAccess>;
}

export function fakes(opts: { config?: Partial<Config>; dieOn?: string } = {}): Fakes {
  const cloud = new FakeCloud();
  const queue = new MemoryQueue();
  const records = new MemoryRecorder();
  const stack = new FakeStack();
  const links = new Set<string>();
  const calls: string[] = [];
  const routing = {
    calls,
    reconcile: async (_s: InstanceSummary, complete: boolean) => (calls.push(`reconcile complete=${complete}`), { changes: 0, failed: 0 }),
    removeInterface: async (n: string) => void calls.push(`removeInterface ${n}`),
  };
  const config: Config = { ...defaultConfig, retry: { budget_seconds: 0.4, initial_ms: 5, max_ms: 20 }, ...opts.config } as Config;
  const access = fakeAccess(cloud, opts.dieOn);
  const deps: PipelineDeps = {
    config: () => config,
    bridge: access,
    stack,
    init: { name: 'none', notifyReady: async () => {}, rehomeDhcpClients: async () => 0 },
    queue,
    records,
    routing,
    links: { exists: (n) => links.has(n), present: async () => new Map([...cloud.nics].filter(([, x]) => links.has(x.name)).map(([m, x]) => [m, x.name])) },
    bootFinished: () => true,
    sleep: (ms) => new Promise((r) => setTimeout(r, Math.min(ms, 5))),
  };
  return { deps, cloud, queue, records, stack, routing, links, access };
}

let seq = 0;
export function ev(action: 'add' | 'remove', ifname: string, n?: number, extra: Partial<HotplugEvent> = {}): HotplugEvent {
  return { id: `e${String(++seq).padStart(4, '0')}`, action, ifname, devpath: `/devices/virtual/net/${ifname}`, time: Date.now(), ...(n !== undefined ? { mac: mac(n) } : {}), ...extra };
}
