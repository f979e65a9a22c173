/**
 * What the pipeline acts through, as one object: the bridge (cloud-init), the network stack, the
 * init system, the queue, the records, policy routing, the links present and the clock. The worker
 * and the daemon build it with defaultDeps(); unit tests give fakes (no Python, no namespaces).
 */
import type { Bridge, InstanceSummary } from '../../bridge/index.js';
import type { Config } from '../config.js';
import type { HotplugEvent } from '../events/event.js';
import { take, list, ack, pendingCount } from '../events/queue.js';
import type { NetworkStack } from '../stack/network-stack.js';
import { chooseStack, type StackReport } from '../stack/index.js';
import { initSystem, type InitSystem } from '../init/index.js';
import { fileRecorder, type Recorder, type EventRecord } from '../record/index.js';
import { reconcile } from '../routing/reconcile.js';
import { removeInterface } from '../routing/cleanup.js';
import { awaitingRouter6, waitRouters6 } from '../routing/ra-wait.js';
import { systemIp } from '../routing/run.js';
import { linkExists, presentLinks } from '../util/sysfs.js';
import { bootFinished } from '../core/boot.js';

/** Runs `fn` with a live bridge whose instance is open; a dead or stuck one is restarted and `fn` run again. */
export interface BridgeAccess {
  withBridge<T>(what: string, fn: (b: Bridge) => Promise<T>, opts?: { attempts?: number; onRestart?: (info: { kind: string; reason: string; attempt: number }) => void }): Promise<T>;
}

export interface EventQueue {
  /** Every queued event, oldest first (nothing is removed until ack). */
  take(): Promise<{ events: HotplugEvent[] }>;
  list(): Promise<HotplugEvent[]>;
  ack(ids: Iterable<string>): Promise<number>;
  pending(): Promise<number>;
}

export interface RoutingOutcome {
  changes: number;
  failed: number;
  /** Interfaces whose IPv6 routes wait for a router advertisement (metadata lists IPv6, no RA yet). */
  awaitingRouter6?: string[];
}

/** Policy routing as the pipeline needs it (src/routing does the work). */
export interface RoutingStage {
  /** Desired state from `summary` vs the system; `metadataComplete` false: nothing deleted for a present NIC. */
  reconcile(summary: InstanceSummary, metadataComplete: boolean): Promise<RoutingOutcome>;
  /** Rules, routes and addresses of ours for an interface that went away. */
  removeInterface(ifname: string): Promise<void>;
  /** Wait (bounded) until these interfaces have an IPv6 default router from an RA; the ones still without. */
  waitRouters6?(ifnames: string[]): Promise<string[]>;
}

export interface PipelineDeps {
  /** The current config (the daemon reloads it on SIGHUP). */
  config(): Config;
  bridge: BridgeAccess;
  stack: NetworkStack;
  init: InitSystem;
  queue: EventQueue;
  records: Recorder;
  routing: RoutingStage;
  links: { exists(ifname: string): boolean; present(): Promise<Map<string, string>> };
  bootFinished(): boolean;
  sleep(ms: number): Promise<void>;
  /** Called after each event record (the daemon streams them to subscribers). */
  onRecord?: (rec: EventRecord) => void;
  /** Called when a bridge failure made the bridge restart (the daemon reports it). */
  onBridgeRestart?: (info: { kind: string; reason: string; attempt: number; what: string }) => void;
}

/** deps.bridge.withBridge, with every restart it makes reported through deps.onBridgeRestart. */
export function withBridge<T>(deps: Pick<PipelineDeps, 'bridge' | 'onBridgeRestart'>, what: string, fn: (b: Bridge) => Promise<T>): Promise<T> {
  return deps.bridge.withBridge(what, fn, { onRestart: (i) => deps.onBridgeRestart?.({ ...i, what }) });
}

export const fileQueue: EventQueue = { take: () => take(), list: () => list(), ack: (ids) => ack(ids), pending: () => pendingCount() };

/** Routing through src/routing with the stack's DHCP lease gateways. */
export function systemRouting(config: () => Config, stack: () => NetworkStack): RoutingStage {
  return {
    reconcile: async (summary, metadataComplete) => {
      const r = await reconcile({ summary, config: config(), metadataComplete, env: { leaseGateway: (n) => stack().leaseGateway(n) } });
      return { changes: r.changes.length, failed: r.failed.length, awaitingRouter6: r.dryRun ? [] : awaitingRouter6(r.skipped) };
    },
    removeInterface: async (ifname) => {
      await removeInterface(ifname);
    },
    waitRouters6: (ifnames) => waitRouters6(ifnames, systemIp()),
  };
}

/**
 * The real system: files under /run/cloud-hotplug, sysfs, `ip`, the init system, and the network
 * stack chosen (once, on first use) from what the bridge's open reported.
 */
export function defaultDeps(
  config: () => Config,
  bridge: BridgeAccess & { readonly stackReport?: StackReport | null },
  hooks: Pick<PipelineDeps, 'onRecord' | 'onBridgeRestart'> = {},
): PipelineDeps {
  let stack: NetworkStack | undefined;
  let fromReport = false;
  // Chosen once from the report; a stack chosen before any open reported one (null) is only a
  // stand-in, replaced as soon as a report is there.
  const stackOf = (): NetworkStack => {
    if (!stack || (!fromReport && bridge.stackReport)) {
      stack = chooseStack(bridge.stackReport);
      fromReport = !!bridge.stackReport;
    }
    return stack;
  };
  return {
    config,
    bridge,
    get stack() {
      return stackOf();
    },
    init: initSystem(),
    queue: fileQueue,
    records: fileRecorder,
    routing: systemRouting(config, stackOf),
    links: { exists: linkExists, present: presentLinks },
    bootFinished,
    sleep: (ms) => new Promise((r) => setTimeout(r, ms)),
    ...hooks,
  };
}
