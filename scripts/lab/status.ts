/** What a lab is right now: phase, namespaces, processes, interfaces, NICs, IMDS counters, cloud-init's status. */
import { existsSync } from 'node:fs';
import { labPaths, CLIENT_ADDR, CLIENT_CIDR, CLIENT_GATEWAY } from './paths.js';
import { loadState, type LabMode, type StageTiming, type Phase } from './state.js';
import { netnsExists, listInterfaces, type IfAddr } from './netns.js';
import { loadModel } from './metadata.js';
import { isAlive, type ProcRef } from './proc.js';
import { cloudInitStatus, type CloudInitStatus } from './instance.js';
import * as ctl from './imds-control.js';
import type { ImdsStats } from './imds.js';
import { readSourceCheck } from './fabric.js';
import { nicInfo, type NicInfo } from './nics.js';
import type { LabOptions } from './running.js';

export interface ProcStatus {
  what: string;
  pid: number;
  alive: boolean;
}

export interface LabStatus {
  name: string;
  exists: boolean;
  labDir: string;
  phase?: Phase;
  mode?: LabMode;
  error?: string;
  netns: { cloud: string; cloudExists: boolean; inst: string; instExists: boolean; client: string; clientExists: boolean };
  /** The client host outside the instance's subnets (see clientExec). */
  client: { address: string; gateway: string; cidr: string } | null;
  /** Packets the cloud's source/destination check dropped (null: no check in this lab). */
  sourceCheckDrops: number | null;
  holderPid?: number;
  processes: ProcStatus[];
  interfaces: IfAddr[];
  nics: NicInfo[];
  metadataOnlyNics: { ifname?: string; mac: string; deviceNumber: number }[];
  imds: ImdsStats | null;
  cloudInit: CloudInitStatus | null;
  upMs?: number;
  stages: StageTiming[];
}

export async function status(opts: LabOptions = {}): Promise<LabStatus> {
  const p = labPaths(opts.name);
  const s = await loadState(p.state).catch(() => null);
  const out: LabStatus = {
    name: p.name,
    exists: !!s || existsSync(p.dir),
    labDir: p.dir,
    phase: s?.phase,
    mode: s?.mode,
    error: s?.error,
    netns: {
      cloud: p.netnsCloud,
      cloudExists: netnsExists(p.netnsCloud),
      inst: p.netnsInst,
      instExists: netnsExists(p.netnsInst),
      client: p.netnsClient,
      clientExists: netnsExists(p.netnsClient),
    },
    client: netnsExists(p.netnsClient) ? { address: CLIENT_ADDR, gateway: CLIENT_GATEWAY, cidr: CLIENT_CIDR } : null,
    sourceCheckDrops: null,
    holderPid: s?.holder?.pid,
    processes: [],
    interfaces: [],
    nics: [],
    metadataOnlyNics: [],
    imds: null,
    cloudInit: null,
    upMs: s?.upMs,
    stages: s?.stages ?? [],
  };
  if (!s) return out;
  const refs: [string, ProcRef | undefined][] = [
    ['holder', s.holder],
    ['dnsmasq', s.procs.dnsmasq],
    ['imds', s.procs.imds],
    ['systemd-udevd', s.procs.udevd],
    ['udevadm monitor', s.procs.udevMonitor],
    ['dbus-daemon', s.procs.dbus],
    ['NetworkManager', s.procs.networkManager],
    ['systemd-networkd', s.procs.networkd],
  ];
  for (const [what, r] of refs) if (r) out.processes.push({ what, pid: r.pid, alive: isAlive(r) });
  if (out.netns.instExists) out.interfaces = await listInterfaces(p.netnsInst);
  const model = await loadModel(p.model).catch(() => null);
  out.nics = s.attachments.map((a) => nicInfo(a, model));
  if (model) {
    out.metadataOnlyNics = model.nics
      .filter((n) => !s.attachments.some((a) => a.mac === n.mac))
      .map((n) => ({ ifname: n.ifname, mac: n.mac, deviceNumber: n.deviceNumber }));
  }
  out.imds = await ctl.imdsStats(p.imdsSock).catch(() => null);
  if (out.netns.cloudExists) {
    const sc = await readSourceCheck(p.netnsCloud).catch(() => null);
    out.sourceCheckDrops = sc?.present ? sc.drops : null;
  }
  if (isAlive(s.holder)) out.cloudInit = await cloudInitStatus(s.holder!.pid).catch(() => null);
  return out;
}
