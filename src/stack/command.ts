/**
 * Running a stack's own tools (nmcli, networkctl) as argv arrays, injectable so each NetworkStack
 * can be unit-tested against recorded outputs. Never throws: a tool that is missing or whose
 * daemon does not answer is a non-zero exit like any other.
 */
import { execa } from 'execa';
import { log } from '../util/log.js';

export interface ToolResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

export type ToolRunner = (cmd: string, args: readonly string[]) => Promise<ToolResult>;

export const systemTool: ToolRunner = async (cmd, args) => {
  const r = await execa(cmd, [...args], { reject: false, stdin: 'ignore', timeout: 15_000, env: { LC_ALL: 'C' } });
  return { exitCode: typeof r.exitCode === 'number' ? r.exitCode : 127, stdout: String(r.stdout ?? ''), stderr: String(r.stderr ?? r.shortMessage ?? '') };
};

/** The kernel's index of a link (sysfs under `root`), or undefined when it is gone. */
export async function ifindexOf(ifname: string, root: string, read: (p: string) => Promise<string | null>): Promise<number | undefined> {
  if (!/^[A-Za-z0-9_.:@-]{1,15}$/.test(ifname)) return undefined;
  const t = await read(`${root.replace(/\/$/, '')}/sys/class/net/${ifname}/ifindex`);
  const n = Number((t ?? '').trim());
  return Number.isInteger(n) && n > 0 ? n : undefined;
}

/**
 * The end of every stack's scrub: a NIC still present loses its addresses and goes down (`flush`:
 * the caller says whether the link is ours to touch), and what was cleaned is logged once.
 */
export async function finishScrub(ifname: string, flush: boolean, killed: number, files: number): Promise<{ killed: number; files: number }> {
  if (flush) {
    await execa('ip', ['addr', 'flush', 'dev', ifname], { reject: false });
    await execa('ip', ['link', 'set', 'dev', ifname, 'down'], { reject: false });
  }
  if (killed || files) log('debug', 'scrubbed interface state', { iface: ifname, dhcp_clients: killed, files });
  return { killed, files };
}
