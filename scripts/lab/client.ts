/** The client host outside the instance's subnets (exec, ping, TCP from it) and the cloud's source/destination check counters. */
import { labPaths, type LabPaths } from './paths.js';
import { loadState } from './state.js';
import { netnsExists } from './netns.js';
import { readSourceCheck, resetSourceCheck as resetSrcCheck, clientArgv, PING_PY, TCP_JS, type FlowCount } from './fabric.js';
import { runPassingExit, type ExecResult } from './exec.js';
import type { LabOptions } from './running.js';
import { UserError } from '../../src/util/errors.js';

function needClient(opts: LabOptions): LabPaths {
  const p = labPaths(opts.name);
  if (!netnsExists(p.netnsClient)) throw new UserError(`lab ${p.name} has no client namespace (not up, or made by an older lab: run \`lab down\` then \`lab up\`)`);
  return p;
}

export interface ClientExecOptions extends LabOptions {
  input?: string;
  env?: Record<string, string>;
  timeoutMs?: number;
  /** 'pipe' (default) or 'inherit'. */
  stdio?: 'inherit' | 'pipe';
}

/**
 * Run a command on the client host (netns chl-NAME-client: ${CLIENT_ADDR}, outside the instance's
 * subnets, routed by the cloud). Host filesystem; the exit code is passed through.
 */
export async function clientExec(argv: string[], opts: ClientExecOptions = {}): Promise<ExecResult> {
  if (!argv.length) throw new UserError('client exec needs a command');
  const p = needClient(opts);
  const full = clientArgv(p.netnsClient, argv);
  return runPassingExit(full, { stdio: opts.stdio, input: opts.input, env: opts.env, timeoutMs: opts.timeoutMs });
}

const IPV4_RE = /^(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])(\.(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])){3}$/;

function checkTarget(ip: string): string {
  if (!IPV4_RE.test(ip)) throw new UserError(`not an IPv4 address: ${JSON.stringify(ip)}`);
  // Only what the lab's namespaces hold: the instance subnets (10.0.K.0/24) and the client network.
  if (!ip.startsWith('10.0.')) throw new UserError(`${ip} is not a lab address (10.0.0.0/16)`);
  return ip;
}

export interface PingResult {
  sent: number;
  received: number;
}

/** ICMP echo from the client to `ip` (a raw socket in python3: no ping binary needed). */
export async function clientPing(ip: string, opts: LabOptions & { count?: number; waitMs?: number } = {}): Promise<PingResult> {
  const count = opts.count ?? 1;
  const waitMs = opts.waitMs ?? 1000;
  if (!Number.isInteger(count) || count < 1 || count > 100) throw new UserError('ping count must be 1..100');
  if (!Number.isInteger(waitMs) || waitMs < 1 || waitMs > 60_000) throw new UserError('ping wait must be 1..60000 ms');
  const r = await clientExec(['/usr/bin/python3', '-c', PING_PY, checkTarget(ip), String(count), String(waitMs)], { name: opts.name, timeoutMs: count * waitMs + 10_000 });
  if (r.exitCode !== 0) throw new Error(`ping ${ip} from the client failed (exit ${r.exitCode}): ${r.stderr.trim()}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as PingResult;
}

export interface TcpResult {
  ok: boolean;
  /** What the server sent before closing. */
  data: string;
  error?: string;
}

/** TCP connect from the client to ip:port; reads until the server closes. */
export async function clientTcp(ip: string, port: number, opts: LabOptions & { timeoutMs?: number } = {}): Promise<TcpResult> {
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new UserError('port must be 1..65535');
  const ms = opts.timeoutMs ?? 3000;
  const r = await clientExec([process.execPath, '-e', TCP_JS, checkTarget(ip), String(port), String(ms)], { name: opts.name, timeoutMs: ms + 10_000 });
  if (r.exitCode !== 0) throw new Error(`tcp ${ip}:${port} from the client failed (exit ${r.exitCode}): ${r.stderr.trim()}`);
  const o = JSON.parse(r.stdout.trim().split('\n').pop()!) as TcpResult;
  return { ok: o.ok, data: o.data ?? '', ...(o.error ? { error: o.error } : {}) };
}

export interface SourceCheckFlow extends FlowCount {
  /** The instance NIC behind the vif (while attached). */
  ifname?: string;
  mac?: string;
}

export interface SourceCheck {
  present: boolean;
  drops: number;
  /** Packets the cloud let through, per (NIC, source address). */
  passed: SourceCheckFlow[];
  /** Packets the cloud dropped (source not in the NIC's subnet), per (NIC, source address). */
  dropped: SourceCheckFlow[];
}

/**
 * The cloud's source/destination check counters: every IPv4 packet that left an instance NIC,
 * per NIC and source address, passed or dropped.
 */
export async function sourceCheck(opts: LabOptions & { reset?: boolean } = {}): Promise<SourceCheck> {
  const p = labPaths(opts.name);
  if (!netnsExists(p.netnsCloud)) throw new UserError(`no lab ${p.name}`);
  const s = await loadState(p.state).catch(() => null);
  const c = await readSourceCheck(p.netnsCloud);
  if (opts.reset && c.present) await resetSrcCheck(p.netnsCloud);
  const who = (f: FlowCount): SourceCheckFlow => {
    const a = s?.attachments.find((x) => x.vif === f.vif);
    return a ? { ...f, ifname: a.ifname, mac: a.mac } : f;
  };
  return { present: c.present, drops: c.drops, passed: c.passed.map(who), dropped: c.dropped.map(who) };
}

export async function resetSourceCheck(opts: LabOptions = {}): Promise<void> {
  const p = labPaths(opts.name);
  if (!netnsExists(p.netnsCloud)) throw new UserError(`no lab ${p.name}`);
  await resetSrcCheck(p.netnsCloud);
}
