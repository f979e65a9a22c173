/**
 * Running a stack's own tools (nmcli, networkctl) as argv arrays, injectable so each NetworkStack
 * can be unit-tested against recorded outputs. Never throws: a tool that is missing or whose
 * daemon does not answer is a non-zero exit like any other.
 */
import { execa } from 'execa';

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
