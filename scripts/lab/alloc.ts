/** Allocation of NIC identities: device numbers, MACs, interface names, IPs, metadata entries. Pure functions on state + model. */
import { HOST_MIN, HOST_MAX, nameHash, subnetInfo } from './paths.js';
import type { LabState, Attachment } from './state.js';
import { newInterfaceId, type MetadataModel, type NicModel } from './metadata.js';
import { UserError } from '../../src/util/errors.js';

export interface Counters {
  mac: number;
  vif: number;
  /** Next host number to try per subnet (IPs cycle through the pool before being reused). */
  nextHost?: Record<string, number>;
  nextHost6?: Record<string, number>;
}

export function usedIps(state: LabState, model: MetadataModel | null): Set<string> {
  const s = new Set<string>();
  for (const a of state.attachments) a.ips.forEach((ip) => s.add(ip));
  for (const n of model?.nics ?? []) n.ips.forEach((ip) => s.add(ip));
  return s;
}

export function allocIps(state: LabState, model: MetadataModel | null, subnet: number, count: number): string[] {
  const info = subnetInfo(subnet);
  const used = usedIps(state, model);
  const c = state.counters as Counters;
  c.nextHost ??= {};
  let h = c.nextHost[String(subnet)] ?? HOST_MIN;
  const out: string[] = [];
  const span = HOST_MAX - HOST_MIN + 1;
  for (let tries = 0; out.length < count && tries < span; tries++) {
    if (h > HOST_MAX || h < HOST_MIN) h = HOST_MIN;
    const ip = `${info.prefix}${h}`;
    h += 1;
    if (!used.has(ip)) {
      out.push(ip);
      used.add(ip);
    }
  }
  if (out.length < count) throw new UserError(`subnet ${subnet} (${info.cidr}) has no free addresses left`);
  c.nextHost[String(subnet)] = h;
  return out;
}

/** `count` free IPv6 addresses of a subnet (prefix6 + hex host number, from HOST_MIN on, as the IPv4 pool). */
export function allocIpv6s(state: LabState, model: MetadataModel | null, subnet: number, count: number): string[] {
  const info = subnetInfo(subnet);
  const used = new Set<string>([...state.attachments.flatMap((a) => a.ipv6s ?? []), ...(model?.nics ?? []).flatMap((n) => n.ipv6s ?? [])]);
  const c = state.counters as Counters;
  c.nextHost6 ??= {};
  let h = c.nextHost6[String(subnet)] ?? HOST_MIN;
  const out: string[] = [];
  for (let tries = 0; out.length < count && tries < 0x10000; tries++, h++) {
    if (h > 0xffff) h = HOST_MIN;
    const ip = `${info.prefix6}${h.toString(16)}`;
    if (!used.has(ip)) out.push(ip), used.add(ip);
  }
  if (out.length < count) throw new UserError(`subnet ${subnet} (${info.cidr6}) has no free IPv6 addresses left`);
  c.nextHost6[String(subnet)] = h;
  return out;
}

export function allocDeviceNumber(state: LabState, model: MetadataModel | null, wanted?: number): number {
  const used = new Set<number>([...state.attachments.map((a) => a.deviceNumber), ...(model?.nics ?? []).map((n) => n.deviceNumber)]);
  if (wanted !== undefined) {
    if (!Number.isInteger(wanted) || wanted < 0 || wanted > 99) throw new UserError(`bad device number ${wanted}`);
    if (used.has(wanted)) throw new UserError(`device number ${wanted} is taken`);
    return wanted;
  }
  let n = 1;
  while (used.has(n)) n++;
  if (n > 99) throw new UserError('no free device number');
  return n;
}

export function allocMac(state: LabState): string {
  const n = state.counters.mac++;
  if (n > 0xffff) throw new UserError('MAC counter exhausted; recreate the lab');
  const h = nameHash(state.name, 4);
  const hx = (v: number) => v.toString(16).padStart(2, '0');
  return `0a:${h.slice(0, 2)}:${h.slice(2, 4)}:00:${hx(n >> 8)}:${hx(n & 0xff)}`;
}

export function newAttachment(
  state: LabState,
  model: MetadataModel | null,
  o: { subnet: number; secondaryIps: number; deviceNumber?: number; inMetadata: boolean; ipv6s?: number },
): Attachment {
  const deviceNumber = allocDeviceNumber(state, model, o.deviceNumber);
  const ips = allocIps(state, model, o.subnet, 1 + o.secondaryIps);
  const ipv6s = o.ipv6s ? allocIpv6s(state, model, o.subnet, o.ipv6s) : undefined;
  return {
    ifname: `eth${deviceNumber}`,
    mac: allocMac(state),
    deviceNumber,
    subnet: o.subnet,
    ips,
    ...(ipv6s ? { ipv6s } : {}),
    vif: `vif${state.counters.vif++}`,
    inMetadata: o.inMetadata,
    attachedAt: Date.now(),
  };
}

/** The metadata entry of a new attachment (visible only from `visibleAt`, epoch ms, when given). */
export function nicModelOf(a: Attachment, visibleAt?: number): NicModel {
  const sg = { id: 'sg-0c0ffee0000000001', name: 'default' };
  return {
    mac: a.mac,
    deviceNumber: a.deviceNumber,
    interfaceId: newInterfaceId(),
    subnet: a.subnet,
    ips: [...a.ips],
    ...(a.ipv6s?.length ? { ipv6s: [...a.ipv6s] } : {}),
    securityGroups: [sg],
    ifname: a.ifname,
    ...(visibleAt ? { visibleAt } : {}),
  };
}
