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

/**
 * The state letter of /proc/PID/stat (after the last ')': the command may contain spaces or
 * parentheses), or null when the text is not a stat line.
 */
export function procState(stat: string): string | null {
  const i = stat.lastIndexOf(')');
  const m = i >= 0 ? /^\s+([A-Za-z])\b/.exec(stat.slice(i + 1)) : null;
  return m ? m[1]! : null;
}

/**
 * Whether the process still runs. A zombie has exited: it only waits for its parent to reap it
 * (kill(pid, 0) still succeeds on one), and a parent that reaps late (PID 1 of a container, here
 * after about a second) must not make a remove wait for a client that is already gone.
 */
async function running(pid: number): Promise<boolean> {
  const st = procState(await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => ''));
  return st !== null && st !== 'Z' && st !== 'X';
}

/** SIGTERM the clients of `ifname`, SIGKILL what still runs after a second. Returns how many there were. */
export async function stopDhcpClients(ifname: string): Promise<number> {
  const pids = (await dhcpClientsOf([ifname])).map((c) => c.pid);
  for (const p of pids) {
    try {
      process.kill(p, 'SIGTERM');
    } catch {
      /* gone already */
    }
  }
  const deadline = Date.now() + 1000;
  let left = pids;
  while (left.length) {
    left = (await Promise.all(left.map(async (p) => ((await running(p)) ? p : 0)))).filter(Boolean);
    if (!left.length) break;
    if (Date.now() >= deadline) {
      // Still a DHCP client of this interface (not a reused PID)? Then it ignored SIGTERM.
      const still = new Set((await dhcpClientsOf([ifname])).map((c) => c.pid));
      for (const p of left.filter((x) => still.has(x))) {
        try {
          process.kill(p, 'SIGKILL');
        } catch {
          /* exited meanwhile */
        }
      }
      break;
    }
    await new Promise((r) => setTimeout(r, 10));
  }
  return pids.length;
}
