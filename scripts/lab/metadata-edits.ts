/** Changing what a running lab's cloud says at run time: NIC addresses, lag, user-data, tokens, hostile fields; and the IMDS's own controls (stop/start, stats, faults). */
import { existsSync } from 'node:fs';
import { labPaths, checkName } from './paths.js';
import { withLock } from './lock.js';
import { saveState, type LabState } from './state.js';
import { loadModel, saveModel, visibleNics, type MetadataModel, type NicModel } from './metadata.js';
import * as ctl from './imds-control.js';
import type { Fault, ImdsStats } from './imds.js';
import { allocIps } from './alloc.js';
import { mustLoad, type LabOptions } from './running.js';
import { UserError } from '../../src/util/errors.js';

function findNic(model: MetadataModel, iface: string): NicModel {
  const k = iface.toLowerCase();
  const n = model.nics.find((x) => x.ifname === iface || x.mac === k || x.interfaceId === iface);
  if (!n) throw new UserError(`no NIC ${iface} in metadata (have: ${model.nics.map((x) => x.ifname ?? x.mac).join(', ') || 'none'})`);
  return n;
}

async function editModel<T>(opts: LabOptions, fn: (m: MetadataModel, s: LabState) => T | Promise<T>): Promise<T> {
  const p = labPaths(opts.name);
  return withLock(p.lock, async () => {
    const s = await mustLoad(p);
    const m = await loadModel(p.model);
    const r = await fn(m, s);
    await saveModel(p.model, m);
    await saveState(p.state, s);
    await ctl.imdsReload(p.imdsSock).catch(() => {});
    return r;
  });
}

export interface MetadataView {
  model: MetadataModel;
  /** MACs the IMDS serves right now (lagging NICs hidden). */
  visibleMacs: string[];
}

export async function showMetadata(opts: LabOptions = {}): Promise<MetadataView> {
  const p = labPaths(opts.name);
  const model = await loadModel(p.model).catch(() => {
    throw new UserError(`no lab ${p.name}`);
  });
  return { model, visibleMacs: visibleNics(model).map((n) => n.mac) };
}

/** Add `count` secondary private IPs to a NIC (no event in the instance, as on EC2). */
export async function addIp(iface: string, count = 1, opts: LabOptions = {}): Promise<string[]> {
  if (!Number.isInteger(count) || count < 1 || count > 30) throw new UserError('count must be 1..30');
  return editModel(opts, (m, s) => {
    const nic = findNic(m, iface);
    const ips = allocIps(s, m, nic.subnet, count);
    nic.ips.push(...ips);
    const a = s.attachments.find((x) => x.mac === nic.mac);
    if (a) a.ips.push(...ips);
    return ips;
  });
}

export async function removeIp(iface: string, ip: string, opts: LabOptions = {}): Promise<void> {
  await editModel(opts, (m, s) => {
    const nic = findNic(m, iface);
    const i = nic.ips.indexOf(ip);
    if (i < 0) throw new UserError(`${ip} is not an address of ${iface}`);
    if (i === 0) throw new UserError(`${ip} is the primary address of ${iface}; it cannot be removed`);
    nic.ips.splice(i, 1);
    const a = s.attachments.find((x) => x.mac === nic.mac);
    if (a) a.ips = a.ips.filter((x) => x !== ip);
  });
}

export async function setUserdata(content: string | null, opts: LabOptions = {}): Promise<void> {
  await editModel(opts, (m) => {
    m.userData = content;
  });
}

/** Hide a NIC from metadata for `seconds` from now (0 = show it now). */
export async function setLag(iface: string, seconds: number, opts: LabOptions = {}): Promise<void> {
  if (!(seconds >= 0)) throw new UserError('lag must be >= 0 seconds');
  await editModel(opts, (m) => {
    const nic = findNic(m, iface);
    if (seconds > 0) nic.visibleAt = Date.now() + Math.round(seconds * 1000);
    else delete nic.visibleAt;
  });
}

/** IMDSv2 only ('required', faithful default) or IMDSv1 allowed ('optional'). */
export async function setHttpTokens(v: 'required' | 'optional', opts: LabOptions = {}): Promise<void> {
  if (v !== 'required' && v !== 'optional') throw new UserError('http tokens: required or optional');
  await editModel(opts, (m) => {
    m.httpTokens = v;
  });
}

/**
 * Overwrite fields of a NIC's metadata with arbitrary values, valid or not (a MAC that is not a
 * MAC, an address that is not an address, device-number -1, shell syntax, huge lists): for
 * hostile-metadata tests. `iface` as for the other metadata commands; returns the NIC as edited.
 */
export async function setNicMetadata(
  iface: string,
  patch: Partial<Pick<NicModel, 'mac' | 'deviceNumber' | 'ips' | 'interfaceId' | 'ipv6s'>>,
  opts: LabOptions = {},
): Promise<NicModel> {
  return editModel(opts, (m) => {
    const nic = findNic(m, iface);
    Object.assign(nic, patch);
    return { ...nic };
  });
}

/** Remove a NIC from metadata only (e.g. one left behind by detach --keep-metadata). */
export async function removeNicMetadata(iface: string, opts: LabOptions = {}): Promise<void> {
  await editModel(opts, (m) => {
    const nic = findNic(m, iface);
    m.nics = m.nics.filter((x) => x !== nic);
  });
}

const sockOf = (opts: LabOptions) => labPaths(opts.name).imdsSock;

function needSock(opts: LabOptions): string {
  const s = sockOf(opts);
  if (!existsSync(s)) throw new UserError(`no IMDS for lab ${checkName(opts.name)} (is it up?)`);
  return s;
}

export const imdsStop = (opts: LabOptions = {}) => ctl.imdsStop(needSock(opts));
export const imdsStart = (opts: LabOptions = {}) => ctl.imdsStart(needSock(opts));
export async function imdsStats(opts: LabOptions & { reset?: boolean } = {}): Promise<ImdsStats> {
  const sock = needSock(opts);
  const st = await ctl.imdsStats(sock);
  if (opts.reset) await ctl.imdsResetStats(sock);
  return st;
}
export const imdsResetStats = (opts: LabOptions = {}) => ctl.imdsResetStats(needSock(opts));
/** Requests the IMDS served since `sinceMs` (epoch ms; the last 5000 are kept). */
export const imdsRequests = (sinceMs = 0, opts: LabOptions = {}) => ctl.imdsRequests(needSock(opts), sinceMs);
export const setFault = (f: Fault, opts: LabOptions = {}) => ctl.imdsSetFault(needSock(opts), f);
export const clearFault = (opts: LabOptions = {}) => ctl.imdsClearFault(needSock(opts));
