/** Attaching and detaching NICs: veths into the instance, DHCP leases, metadata entries, the cloud's source check. */
import { labPaths, subnetInfo, DEFAULT_SECONDARY_SUBNET } from './paths.js';
import { withLock } from './lock.js';
import { saveState, type Attachment } from './state.js';
import { createVeths, deleteVeth } from './netns.js';
import { loadModel, saveModel, type MetadataModel } from './metadata.js';
import { writeHostsFile, reloadHosts, dhcpRelease } from './dhcp.js';
import * as ctl from './imds-control.js';
import { newAttachment, nicModelOf } from './alloc.js';
import { srcCheckAddPorts, srcCheckDelPort } from './fabric.js';
import { run } from './run.js';
import { mustLoad, type LabOptions } from './running.js';
import { UserError } from '../../src/util/errors.js';

export interface AttachOptions extends LabOptions {
  /** The NIC shows in metadata only this many seconds after the attach. */
  lagSeconds?: number;
  /** Secondary private IPs (besides the primary). */
  ips?: number;
  /** Subnet index 1..4 (default 2: not the primary's). */
  subnet?: number;
  /** Leave the NIC out of the metadata altogether. */
  metadata?: boolean;
  /** Device number (default: lowest free >= 1). Only for a single attach. */
  deviceNumber?: number;
  /** OpenStack: a port without DHCP (its fixed IPs static in network_data.json). */
  static?: boolean;
  /** IPv6 addresses (the first by DHCPv6, the rest secondary); needs a lab up with --ipv6. */
  ipv6s?: number;
}

export interface NicInfo {
  ifname: string;
  mac: string;
  deviceNumber: number;
  ips: string[];
  /** IPv6 addresses (first: DHCPv6's); absent for an IPv4-only NIC. */
  ipv6s?: string[];
  subnet: number;
  subnetId?: string;
  cidr: string;
  gateway: string;
  /** The subnet's IPv6 /64 (the NIC's default router is the cloud's link-local address, from its RA). */
  cidr6?: string;
  interfaceId?: string;
  /** Epoch ms when the NIC becomes visible in metadata (lag). */
  visibleAt?: number;
  inMetadata: boolean;
}

export function nicInfo(a: Attachment, model: MetadataModel | null): NicInfo {
  const sub = subnetInfo(a.subnet);
  const nm = model?.nics.find((n) => n.mac === a.mac);
  return {
    ifname: a.ifname,
    mac: a.mac,
    deviceNumber: a.deviceNumber,
    ips: [...a.ips],
    ...(a.ipv6s?.length ? { ipv6s: [...a.ipv6s], cidr6: sub.cidr6 } : {}),
    subnet: a.subnet,
    subnetId: model?.subnets[String(a.subnet)]?.id,
    cidr: sub.cidr,
    gateway: sub.gateway,
    interfaceId: nm?.interfaceId,
    visibleAt: nm?.visibleAt,
    inMetadata: !!nm,
  };
}

export async function attach(opts: AttachOptions = {}): Promise<NicInfo> {
  const [nic] = await attachMany(1, opts);
  return nic!;
}

/**
 * Attach `n` NICs at once: identities, DHCP leases and metadata are prepared first, then all the
 * veths are created by one `ip -batch` (the instance sees the `add` uevents back to back).
 */
export async function attachMany(n: number, opts: AttachOptions = {}): Promise<NicInfo[]> {
  if (!Number.isInteger(n) || n < 1 || n > 64) throw new UserError('attach count must be 1..64');
  if (opts.deviceNumber !== undefined && n !== 1) throw new UserError('--device-number needs a single attach');
  const subnet = opts.subnet ?? DEFAULT_SECONDARY_SUBNET;
  subnetInfo(subnet);
  const secondary = opts.ips ?? 0;
  if (!Number.isInteger(secondary) || secondary < 0 || secondary > 30) throw new UserError('--ips must be 0..30');
  const lag = opts.lagSeconds ?? 0;
  if (!(lag >= 0)) throw new UserError('--lag must be >= 0');
  const ipv6s = opts.ipv6s ?? 0;
  if (!Number.isInteger(ipv6s) || ipv6s < 0 || ipv6s > 30) throw new UserError('--ipv6 must be 0..30');
  const inMetadata = opts.metadata ?? true;
  const p = labPaths(opts.name);
  return withLock(p.lock, async () => {
    const s = await mustLoad(p);
    if (ipv6s && !s.options.ipv6) throw new UserError(`lab ${p.name} has no IPv6 (bring it up with --ipv6)`);
    const model = await loadModel(p.model);
    const atts: Attachment[] = [];
    for (let i = 0; i < n; i++) {
      const a = newAttachment(s, model, { subnet, secondaryIps: secondary, deviceNumber: opts.deviceNumber, inMetadata, ipv6s });
      s.attachments.push(a);
      atts.push(a);
    }
    await saveState(p.state, s);
    // Under the cloud's source check from their first frame (set elements are names: the vifs need not exist yet).
    await srcCheckAddPorts(p.netnsCloud, atts.map((a) => ({ vif: a.vif, subnet: a.subnet })));
    await writeHostsFile(p, s.attachments);
    await reloadHosts(p, s.procs.dnsmasq);
    if (inMetadata) {
      const visibleAt = lag > 0 ? Date.now() + Math.round(lag * 1000) : undefined;
      for (const a of atts) model.nics.push({ ...nicModelOf(a, visibleAt), ...(opts.static ? { dhcp: false } : {}) });
      await saveModel(p.model, model);
      await ctl.imdsReload(p.imdsSock).catch(() => {});
    }
    await createVeths(
      p.netnsCloud,
      p.netnsInst,
      atts.map((a) => ({ vif: a.vif, ifname: a.ifname, mac: a.mac, subnet: a.subnet })),
    );
    for (const a of atts) a.attachedAt = Date.now();
    await saveState(p.state, s);
    return atts.map((a) => nicInfo(a, inMetadata ? model : null));
  });
}

export interface DetachOptions extends LabOptions {
  /** Leave the NIC listed in metadata (like a forced detach can). */
  keepMetadata?: boolean;
}

export async function detach(iface: string, opts: DetachOptions = {}): Promise<{ ifname: string; mac: string; metadataRemoved: boolean }> {
  const p = labPaths(opts.name);
  return withLock(p.lock, async () => {
    const s = await mustLoad(p);
    const a = s.attachments.find((x) => x.ifname === iface || x.mac === iface.toLowerCase() || x.vif === iface);
    if (!a) throw new UserError(`no attached NIC ${iface} in lab ${p.name} (attached: ${s.attachments.map((x) => x.ifname).join(', ') || 'none'})`);
    const gone = await deleteVeth(p.netnsCloud, a.vif);
    if (!gone) {
      const r = await run(['ip', '-n', p.netnsInst, 'link', 'del', a.ifname], { check: false });
      if (r.exitCode !== 0) throw new Error(`could not delete ${a.vif}/${a.ifname}: ${r.stderr.trim()}`);
    }
    await srcCheckDelPort(p.netnsCloud, { vif: a.vif, subnet: a.subnet });
    s.attachments = s.attachments.filter((x) => x !== a);
    await saveState(p.state, s);
    let metadataRemoved = false;
    if (!opts.keepMetadata) {
      const model = await loadModel(p.model);
      const before = model.nics.length;
      model.nics = model.nics.filter((x) => x.mac !== a.mac);
      metadataRemoved = model.nics.length !== before;
      if (metadataRemoved) {
        await saveModel(p.model, model);
        await ctl.imdsReload(p.imdsSock).catch(() => {});
      }
    }
    await writeHostsFile(p, s.attachments);
    await reloadHosts(p, s.procs.dnsmasq);
    // free the DHCP lease so the address can be handed to another MAC later
    if (a.ips[0]) await dhcpRelease(p, a.subnet, a.ips[0], a.mac);
    return { ifname: a.ifname, mac: a.mac, metadataRemoved };
  });
}
