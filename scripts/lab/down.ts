/** Taking a lab down (by PID, then by namespace membership; safe after a crash and to repeat), what is left of it, and which labs exist. */
import { rm, readdir } from 'node:fs/promises';
import { existsSync, readFileSync } from 'node:fs';
import { labPaths, LAB_ROOT, type LabPaths } from './paths.js';
import { withLock } from './lock.js';
import { loadState } from './state.js';
import { deleteNetns, netnsExists, netnsInode } from './netns.js';
import { isAlive, killRefs, pidsInNamespaces, refOf, nsInode, type ProcRef } from './proc.js';
import { run } from './run.js';
import { progress, type LabOptions } from './running.js';

export interface DownResult {
  name: string;
  existed: boolean;
  killed: number[];
  remaining: string[];
}

export async function down(opts: LabOptions = {}): Promise<DownResult> {
  const p = labPaths(opts.name);
  return withLock(p.lock, () => downUnlocked(p, opts), { timeoutMs: 5000, force: true });
}

export async function downUnlocked(p: LabPaths, opts: LabOptions): Promise<DownResult> {
  const s = await loadState(p.state).catch(() => null);
  const existed = !!s || existsSync(p.dir) || netnsExists(p.netnsCloud) || netnsExists(p.netnsInst) || netnsExists(p.netnsClient);
  const killed: number[] = [];
  if (!existed) {
    progress(opts, 'nothing to take down');
    return { name: p.name, existed, killed, remaining: [] };
  }
  progress(opts, 'taking down');
  // 1. the processes the lab started, by PID (+ start time)
  const refs = [s?.procs.networkManager, s?.procs.networkd, s?.procs.dbus, s?.procs.udevMonitor, s?.procs.udevd, s?.procs.imds, s?.procs.dnsmasq].filter((r): r is ProcRef => !!r);
  killed.push(...(await killRefs(refs)));
  // 2. everything else living in the lab's namespaces (dhclient, daemons, exec'd commands), then the holder
  for (let round = 0; round < 6; round++) {
    // Re-read every round, and only while the holder lives: once it is gone its mount
    // namespace's inode can be reused by another lab's, whose processes are not ours.
    const mntIno = isAlive(s?.holder) ? nsInode(s!.holder!.pid, 'mnt') : null;
    const netInos = [netnsInode(p.netnsCloud), netnsInode(p.netnsInst), netnsInode(p.netnsClient)].filter((x): x is number => !!x);
    const pids = pidsInNamespaces(netInos, mntIno ? [mntIno] : []).filter((pid) => pid !== s?.holder?.pid);
    const more: ProcRef[] = [];
    for (const pid of pids) {
      try {
        more.push(refOf(pid));
      } catch {
        /* gone */
      }
    }
    if (!more.length) break;
    killed.push(...(await killRefs(more, 500)));
  }
  if (s?.holder) killed.push(...(await killRefs([s.holder])));
  // the holder's children (none expected) and anything left
  const netInos = [netnsInode(p.netnsCloud), netnsInode(p.netnsInst), netnsInode(p.netnsClient)].filter((x): x is number => !!x);
  const left = pidsInNamespaces(netInos, []); // the holder is dead: its mnt inode may be reused
  if (left.length) {
    killed.push(...(await killRefs(left.flatMap((pid) => {
      try {
        return [refOf(pid)];
      } catch {
        return [];
      }
    }), 200)));
  }
  // 3. namespaces (their links and bridges go with them)
  await deleteNetns(p.netnsClient);
  await deleteNetns(p.netnsInst);
  await deleteNetns(p.netnsCloud);
  // 4. host mounts under the lab dir (none are made there; only a crash mid-mount could leave one)
  for (const mp of hostMountsUnder(p.dir)) await run(['umount', '-l', mp], { check: false });
  // 5. the lab dir
  await rm(p.dir, { recursive: true, force: true });
  const remaining = await leftovers(p);
  progress(opts, remaining.length ? `down, but left: ${remaining.join('; ')}` : 'down');
  return { name: p.name, existed, killed: [...new Set(killed)], remaining };
}

function hostMountsUnder(dir: string): string[] {
  try {
    return readFileSync('/proc/self/mountinfo', 'utf8')
      .split('\n')
      .map((l) => l.split(' ')[4] ?? '')
      .filter((mp) => mp === dir || mp.startsWith(dir + '/'))
      .reverse();
  } catch {
    return [];
  }
}

/** What of a lab still exists (empty after a clean `down`). */
export async function leftovers(pOrName: LabPaths | string | undefined): Promise<string[]> {
  const p = typeof pOrName === 'object' ? pOrName : labPaths(pOrName);
  const out: string[] = [];
  if (netnsExists(p.netnsCloud)) out.push(`netns ${p.netnsCloud}`);
  if (netnsExists(p.netnsInst)) out.push(`netns ${p.netnsInst}`);
  if (netnsExists(p.netnsClient)) out.push(`netns ${p.netnsClient}`);
  if (existsSync(p.dir)) out.push(`dir ${p.dir}`);
  for (const mp of hostMountsUnder(p.dir)) out.push(`mount ${mp}`);
  return out;
}

/** Names of labs with a state dir or a namespace on this machine. */
export async function listLabs(): Promise<string[]> {
  const names = new Set<string>();
  for (const e of await readdir(LAB_ROOT).catch(() => [] as string[])) {
    if (!e.endsWith('.lock') && !e.startsWith('.')) names.add(e);
  }
  for (const e of await readdir('/run/netns').catch(() => [] as string[])) {
    const m = /^chl-(.+)-(cloud|inst|client)$/.exec(e);
    if (m) names.add(m[1]!);
  }
  return [...names].sort();
}
