/**
 * DHCP client processes (dhclient, dhcpcd, udhcpc) found from /proc: which serve an interface, and
 * stopping them. Shared by the network stacks whose clients run as their own processes.
 */
import { readdir, readFile, readlink } from 'node:fs/promises';
import type { DhcpClient } from './network-stack.js';

/** Program names of DHCP clients that run one process per interface. */
export const DHCP_CLIENT_RE = /^(dhclient|dhcpcd|udhcpc)$/;

/** DHCP client processes in our network namespace, from one pass over /proc. */
export async function dhcpProcesses(): Promise<{ pid: number; args: string[] }[]> {
  const found: { pid: number; args: string[] }[] = [];
  // Only clients in our network namespace: a container's (or another netns's) dhclient for an
  // interface of the same name is not ours to stop.
  const ourNet = await readlink('/proc/self/ns/net').catch(() => null);
  for (const ent of await readdir('/proc')) {
    if (!/^\d+$/.test(ent)) continue;
    let argv: string[];
    try {
      argv = (await readFile(`/proc/${ent}/cmdline`, 'utf8')).split('\0').filter(Boolean);
    } catch {
      continue;
    }
    const prog = (argv[0] ?? '').split('/').pop() ?? '';
    if (!DHCP_CLIENT_RE.test(prog)) continue;
    if (ourNet && (await readlink(`/proc/${ent}/ns/net`).catch(() => null)) !== ourNet) continue;
    found.push({ pid: Number(ent), args: argv.slice(1) });
  }
  return found;
}

/** The clients serving `ifnames`: names are positional args or an -i value, matched exactly, never as a substring. */
export async function dhcpClientsOf(ifnames: readonly string[]): Promise<DhcpClient[]> {
  if (!ifnames.length) return [];
  const procs = await dhcpProcesses();
  return ifnames.flatMap((ifname) => procs.filter((p) => p.args.includes(ifname)).map((p) => ({ pid: p.pid, ifname })));
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** SIGTERM the clients of `ifname`, SIGKILL what is left after a second. Returns how many there were. */
export async function stopDhcpClients(ifname: string): Promise<number> {
  const pids = (await dhcpClientsOf([ifname])).map((c) => c.pid);
  for (const p of pids) {
    try {
      process.kill(p, 'SIGTERM');
    } catch {
      /* gone already */
    }
  }
  for (let i = 0; i < 20 && pids.some(alive); i++) {
    await new Promise((r) => setTimeout(r, 50));
    if (i === 19) for (const p of pids.filter(alive)) process.kill(p, 'SIGKILL');
  }
  return pids.length;
}
