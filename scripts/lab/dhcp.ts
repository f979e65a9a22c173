/**
 * dnsmasq of a lab, in the cloud netns: DHCP on every subnet bridge with one static lease per
 * MAC (a hosts file re-read on SIGHUP), and DNS that answers NXDOMAIN for every name so nothing
 * in the instance waits on a resolver. It never reads or writes host config. With IPv6 (`up --ipv6`)
 * it also sends router advertisements on every bridge (managed flag: addresses by DHCPv6, the
 * prefix on-link, the bridge's link-local address the default router) and answers DHCPv6 with the
 * NIC's first IPv6 address, by MAC (dnsmasq learns a DHCPv6 client's MAC on the same link).
 */
import { open, stat } from 'node:fs/promises';
import { writeFileAtomic } from '../../src/util/atomic.js';
import { allSubnets, subnetInfo, type LabPaths } from './paths.js';
import type { Attachment } from './state.js';
import { netnsPath } from './netns.js';
import { isAlive, type ProcRef } from './proc.js';
import { run, sleep } from './run.js';

export const LEASE_TIME = '1h';
export const DHCP_DOMAIN = 'ec2.internal';

export function dnsmasqArgv(p: LabPaths, ipv6 = false): string[] {
  return dnsmasqArgvIn(['nsenter', `--net=${netnsPath(p.netnsCloud)}`, '--'], p, ipv6);
}

/** dnsmasq's argv behind `prefix` (how to enter the cloud's netns); the VM tier uses it too. */
export function dnsmasqArgvIn(prefix: string[], p: Pick<LabPaths, 'dnsmasqPid' | 'dnsmasqLog' | 'dhcpLeases' | 'dhcpHosts'>, ipv6 = false): string[] {
  const argv = [
    ...prefix,
    'dnsmasq',
    '--keep-in-foreground',
    '--conf-file=/dev/null',
    `--pid-file=${p.dnsmasqPid}`,
    '--user=root',
    '--group=root',
    `--log-facility=${p.dnsmasqLog}`,
    '--log-dhcp',
    '--no-resolv',
    '--no-hosts',
    '--no-poll',
    '--address=/#/',
    '--bind-dynamic',
    '--except-interface=lo',
    '--dhcp-authoritative',
    `--dhcp-leasefile=${p.dhcpLeases}`,
    `--dhcp-hostsfile=${p.dhcpHosts}`,
    `--dhcp-option=option:domain-name,${DHCP_DOMAIN}`,
  ];
  for (const s of allSubnets()) {
    argv.push(`--interface=${s.bridge}`);
    argv.push(`--dhcp-range=set:s${s.index},${s.prefix}0,static,${s.mask},${LEASE_TIME}`);
    if (ipv6) argv.push(`--dhcp-range=set:s6${s.index},${s.prefix6},static,64,${LEASE_TIME}`);
  }
  if (ipv6) argv.push('--enable-ra');
  return argv;
}

/** One line per attached NIC: MAC,IP[,[IPv6]],hostname (the first address of each family; the others are not DHCP's). */
export function hostsFileContent(atts: Attachment[]): string {
  return (
    atts
      .filter((a) => a.ips[0])
      .map((a) => `${a.mac},${a.ips[0]},${a.ipv6s?.[0] ? `[${a.ipv6s[0]}],` : ''}ip-${a.ips[0]!.replace(/\./g, '-')}`)
      .join('\n') + '\n'
  );
}

export async function writeHostsFile(p: LabPaths, atts: Attachment[]): Promise<void> {
  await writeFileAtomic(p.dhcpHosts, hostsFileContent(atts));
}

/** Size of a log file (0 if missing): where to start reading what comes next. */
export async function logSize(path: string): Promise<number> {
  try {
    return (await stat(path)).size;
  } catch {
    return 0;
  }
}

/** What a log file holds from `offset` on (at most `cap` bytes; '' if missing). */
export async function logSince(path: string, offset: number, cap = 1 << 20): Promise<string> {
  const fh = await open(path, 'r').catch(() => null);
  if (!fh) return '';
  try {
    const size = (await fh.stat()).size;
    if (size <= offset) return '';
    const buf = Buffer.alloc(Math.min(size - offset, cap));
    await fh.read(buf, 0, buf.length, offset);
    return buf.toString('utf8');
  } finally {
    await fh.close();
  }
}

/** SIGHUP dnsmasq and wait (up to 3 s) until its log says it re-read the hosts file. */
export async function reloadHosts(p: Pick<LabPaths, 'dnsmasqLog' | 'dhcpHosts'>, dnsmasq: ProcRef | undefined): Promise<boolean> {
  if (!dnsmasq || !isAlive(dnsmasq)) return false;
  const off = await logSize(p.dnsmasqLog);
  process.kill(dnsmasq.pid, 'SIGHUP');
  const needle = `read ${p.dhcpHosts}`;
  const end = Date.now() + 3000;
  while (Date.now() < end) {
    if ((await logSince(p.dnsmasqLog, off)).includes(needle)) return true;
    await sleep(10);
  }
  return false;
}

/** dnsmasq is ready once it logged its startup and the hosts file read. */
export async function waitDnsmasqReady(p: LabPaths, ref: ProcRef, timeoutMs = 5000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (!isAlive(ref)) break;
    if ((await logSince(p.dnsmasqLog, 0)).includes(`read ${p.dhcpHosts}`)) return;
    await sleep(20);
  }
  const tail = (await logSince(p.dnsmasqLog, 0)).split('\n').slice(-5).join(' | ');
  throw new Error(`dnsmasq did not start (${isAlive(ref) ? 'no ready line' : 'exited'}): ${tail}`);
}

/**
 * DHCPRELEASE on behalf of a detached NIC (what dnsmasq's dhcp_release does): a UDP packet bound
 * to the subnet's bridge, sent to dnsmasq from inside the cloud netns, so the address can go to
 * another MAC later (dnsmasq refuses a configured address still leased to someone else).
 * Python because node cannot set SO_BINDTODEVICE; the script is constant, data are argv.
 */
const RELEASE_PY = `
import socket, struct, sys
dev, server, lease, mac = sys.argv[1:5]
chaddr = bytes(int(x, 16) for x in mac.split(':'))
pkt = struct.pack('!BBBBIHH4s4s4s4s16s64s128s', 1, 1, len(chaddr), 0, 0, 0, 0,
                  socket.inet_aton(lease), b'\\0' * 4, b'\\0' * 4, b'\\0' * 4,
                  chaddr.ljust(16, b'\\0'), b'', b'')
pkt += struct.pack('!I', 0x63825363) + bytes([53, 1, 7, 54, 4]) + socket.inet_aton(server) + bytes([255])
pkt = pkt.ljust(548, b'\\0')
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, dev.encode())
s.sendto(pkt, (server, 67))
`;

export async function dhcpRelease(p: LabPaths, subnet: number, ip: string, mac: string): Promise<boolean> {
  const s = subnetInfo(subnet);
  const r = await run(
    ['nsenter', `--net=${netnsPath(p.netnsCloud)}`, '--', '/usr/bin/python3', '-c', RELEASE_PY, s.bridge, s.gateway, ip, mac],
    { check: false, timeoutMs: 10_000 },
  );
  return r.exitCode === 0;
}
