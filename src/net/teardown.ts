/**
 * What is left of a removed NIC after the activator's own bring-down: its DHCP
 * client, the activator's state, addresses/routes if the link still exists.
 * Upstream 22.4 rewrote the config before `ifdown`, so ifdown said "unknown
 * interface" and dhclient and /run/network/ifstate.<if> stayed behind.
 */
import { readdir, readFile, readlink, rm } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { log } from '../util/log.js';

const root = process.env.HOTPLUG_ROOT ?? '/';

/** DHCP clients (dhclient, dhcpcd, udhcpc) in our network namespace, from one pass over /proc. */
export async function dhcpClients(): Promise<{ pid: number; args: string[] }[]> {
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
    if (!/^(dhclient|dhcpcd|udhcpc)$/.test(prog)) continue;
    if (ourNet && (await readlink(`/proc/${ent}/ns/net`).catch(() => null)) !== ourNet) continue;
    found.push({ pid: Number(ent), args: argv.slice(1) });
  }
  return found;
}

/** PIDs of DHCP clients serving `ifname`. */
export async function dhcpClientPids(ifname: string): Promise<number[]> {
  // Interface names are positional args or an -i value; match exactly, never as a substring.
  return (await dhcpClients()).filter((c) => c.args.includes(ifname)).map((c) => c.pid);
}

async function alive(pid: number): Promise<boolean> {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

export async function stopDhcpClients(ifname: string): Promise<number> {
  const pids = await dhcpClientPids(ifname);
  for (const p of pids) {
    try {
      process.kill(p, 'SIGTERM');
    } catch {
      /* gone already */
    }
  }
  for (let i = 0; i < 20 && pids.length; i++) {
    const left = (await Promise.all(pids.map(alive))).some(Boolean);
    if (!left) break;
    await new Promise((r) => setTimeout(r, 50));
    if (i === 19) for (const p of pids) if (await alive(p)) process.kill(p, 'SIGKILL');
  }
  return pids.length;
}

/** ifupdown's per-interface state and the DHCP client's pid file. */
export function activatorStateFiles(ifname: string): string[] {
  return [join(root, 'run/network', `ifstate.${ifname}`), join(root, 'run', `dhclient.${ifname}.pid`), join(root, 'run', `dhclient6.${ifname}.pid`)];
}

export async function linkExists(ifname: string): Promise<boolean> {
  return existsSync(join(root, 'sys/class/net', ifname));
}

/** Leave nothing of `ifname` behind; safe to run on a device that is already gone. */
export async function scrubInterface(ifname: string): Promise<{ killed: number; files: number }> {
  const killed = await stopDhcpClients(ifname);
  // If the activator's ifdown did not run or failed (device gone, stanza already re-rendered
  // away), ifupdown's aggregate state still lists it (`ifquery --state` would report it up): let
  // ifdown itself drop it, under its own lock, with a throw-away manual stanza (whose down
  // commands, `ip addr flush` and `ip link set down`, are what this scrub does anyway).
  const agg = await readFile(join(root, 'run/network/ifstate'), 'utf8').catch(() => '');
  if (root === '/' && agg.split('\n').some((l) => l.split('=')[0] === ifname)) {
    await execa('ifdown', ['--force', '--no-scripts', '-i', '/dev/stdin', ifname], { input: `iface ${ifname} inet manual\n`, reject: false });
  }
  let files = 0;
  for (const f of activatorStateFiles(ifname)) {
    if (existsSync(f)) {
      await rm(f, { force: true });
      files++;
    }
  }
  if (await linkExists(ifname)) {
    await execa('ip', ['addr', 'flush', 'dev', ifname], { reject: false });
    await execa('ip', ['link', 'set', 'dev', ifname, 'down'], { reject: false });
  }
  if (killed || files) log('debug', 'scrubbed interface state', { iface: ifname, dhcp_clients: killed, files });
  return { killed, files };
}
