/**
 * Asking the guest, through qemu-guest-agent: run a command, list its links and addresses, wait
 * for a NIC's address.
 */
import { UserError } from '../../src/util/errors.js';
import type { VmPaths } from './paths.js';
import { isAlive, waitFor } from './proc.js';
import { GuestAgent, type ExecResult } from './qmp.js';
import { requireState } from './state.js';

export async function exec(argv: string[], o: { name?: string; timeoutMs?: number; input?: string } = {}): Promise<ExecResult> {
  const [p, s] = await requireState(o.name);
  if (!isAlive(s.procs.qemu)) throw new UserError(`vm ${p.name}: qemu is not running`);
  if (!argv.length) throw new UserError('nothing to run');
  return new GuestAgent(p.qgaSock).exec(argv, { timeoutMs: o.timeoutMs, input: o.input });
}

export interface GuestLink {
  ifname: string;
  address: string;
  operstate: string;
  addr_info?: { family: string; local: string; prefixlen: number }[];
}

export async function guestLinks(p: VmPaths): Promise<GuestLink[]> {
  const r = await new GuestAgent(p.qgaSock).exec(['ip', '-j', 'addr', 'show'], { timeoutMs: 20_000 });
  if (r.exitCode !== 0) throw new Error(`ip addr in guest: ${r.stderr}`);
  return JSON.parse(r.stdout || '[]') as GuestLink[];
}

/** Poll the guest until the interface with `mac` has `ip`; returns its name (null at timeout). */
export async function waitGuestAddress(p: VmPaths, mac: string, ip: string, timeoutMs: number): Promise<string | null> {
  let name: string | null = null;
  await waitFor(
    async () => {
      const l = (await guestLinks(p).catch(() => [])).find((x) => x.address === mac);
      if (l && (l.addr_info ?? []).some((a) => a.family === 'inet' && a.local === ip)) name = l.ifname;
      return name;
    },
    timeoutMs,
    250,
  );
  return name;
}
