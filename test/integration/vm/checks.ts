/**
 * Checks the VM suites run in the guest (through qemu-guest-agent), for one VM by name: shell
 * commands, the event records, `ip -j` state, what "configured" means for a NIC (its addresses,
 * a rule per address into its table, the table's default route), ifupdown's files for a NIC, and
 * the running daemon's CPU priority and node flags as its unit declares them.
 */
import { expect } from 'chai';
import * as vm from '../../../scripts/vm/vm.js';
import { DAEMON_SERVICE, daemonUnitText } from '../../../src/install/files.js';
import { DAEMON_NICE } from '../../../src/daemon/supervise.js';
import type { EventRec } from '../helpers.js';

/** An event record as the guest keeps it (the lab suites' EventRec, with its time). */
export interface EventRecT extends EventRec {
  time: string;
}

/** `ip -N -j` rows (numbers as strings, as iproute2 prints them with -N). */
export type Row = Record<string, unknown>;

/** The spec's table (and rule priority) for a NIC on network card 0: 10000 + 100*card + device number. */
export const tableOf = (n: vm.Nic) => 10000 + n.deviceNumber;

/**
 * What the daemon's unit declares for its priority and its node: read from the text `hotplug
 * install` writes (src/install/files.ts), so the VM check and the unit cannot drift apart.
 */
export function daemonUnitDeclares(): { nice: number; cpuWeight: number; nodeFlags: string[] } {
  const text = daemonUnitText('/usr/bin/node');
  const key = (k: string): string => {
    const m = new RegExp(`^${k}=(.+)$`, 'm').exec(text);
    if (!m) throw new Error(`the daemon unit declares no ${k}=`);
    return m[1]!;
  };
  // ExecStart=NODE FLAGS… CLI_JS daemon
  const exec = key('ExecStart').split(' ');
  const d = { nice: Number(key('Nice')), cpuWeight: Number(key('CPUWeight')), nodeFlags: exec.slice(1, exec.findIndex((a) => a.endsWith('.js'))) };
  // A unit reshaped past this parser must fail the check, not make it compare nothing.
  if (!Number.isInteger(d.nice) || !Number.isInteger(d.cpuWeight) || !d.nodeFlags.length || !d.nodeFlags.every((f) => f.startsWith('--'))) {
    throw new Error(`cannot read the daemon unit's Nice=, CPUWeight= and node flags: ${JSON.stringify(d)}`);
  }
  return d;
}

/** Field 19 (nice) of a /proc/PID/stat line; the command name (field 2) may hold spaces. */
export const niceOfStat = (stat: string): number => Number(stat.replace(/^.*\) /s, '').split(' ')[16]);

export type GuestChecks = ReturnType<typeof guestChecks>;

export function guestChecks(NAME: string) {
  async function sh(script: string, timeoutMs = 120_000): Promise<{ exitCode: number; stdout: string; stderr: string }> {
    return vm.exec(['sh', '-c', script], { name: NAME, timeoutMs });
  }

  async function out(script: string): Promise<string> {
    const r = await sh(script);
    if (r.exitCode !== 0) throw new Error(`guest: ${script}: exit ${r.exitCode}: ${r.stderr.trim()}`);
    return r.stdout;
  }

  /** What to read when something did not happen: our journal lines and udev's complaints. */
  async function diagnostics(): Promise<string> {
    const r = await sh(
      "journalctl -b -o cat --no-pager | grep -E 'hotplug|hook.js|TRAP|MemoryDeny' | tail -n 25; echo '--- /var/log/cloud-hotplug.log'; tail -n 10 /var/log/cloud-hotplug.log; echo '--- queue'; ls /run/cloud-hotplug/queue 2>&1; echo '--- ip rule / addr'; ip rule; ip -br addr",
    ).catch((e) => ({ stdout: `(no diagnostics: ${e})`, stderr: '', exitCode: 1 }));
    let hint = '';
    if (/hook\.js.*terminated by signal TRAP/.test(r.stdout)) {
      hint =
        '\nHINT: udev killed the hook: node\'s JIT cannot run under systemd-udevd\'s MemoryDenyWriteExecute=yes (Debian 12). ' +
        'The rule must run "node --jitless …/hook.js" (src/install/files.ts ruleText).';
    }
    return `${r.stdout}${hint}`;
  }

  async function recentEvents(): Promise<EventRecT[]> {
    const r = await sh('cat /run/cloud-hotplug/recent-events.json 2>/dev/null || echo []');
    try {
      return JSON.parse(r.stdout) as EventRecT[];
    } catch {
      return [];
    }
  }

  const ipj = async (args: string): Promise<Row[]> => JSON.parse((await out(`ip -N -j ${args}`)) || '[]') as Row[];

  /**
   * ifupdown: one dhclient for the NIC, alive after the unit that brought it up has ended, in a
   * scope of its own (systemd kills a finished unit's whole cgroup, a DHCP client with it).
   */
  async function expectDhcpClientOutlivesWorker(n: vm.Nic): Promise<void> {
    // The transient worker unit must have ended (and systemd cleaned its cgroup) for this to mean anything.
    for (let i = 0; i < 90; i++) {
      const st = (await out('systemctl is-active cloud-hotplug-worker.service || true')).trim();
      if (!['active', 'activating', 'deactivating', 'reloading'].includes(st)) break;
      await new Promise((r) => setTimeout(r, 2000));
    }
    const ps = await out(`for p in $(pgrep -x dhclient); do echo "$p nice=$(ps -o ni= -p $p | tr -d ' ') $(tr '\\0' ' ' </proc/$p/cmdline) | $(cat /proc/$p/cgroup)"; done; true`);
    const mine = ps.split('\n').filter((l) => l.split(' | ')[0]!.split(' ').includes(n.ifname));
    expect(mine, `dhclient for ${n.ifname} (all: ${ps})`).to.have.length(1);
    expect(mine[0], 'its cgroup').to.match(new RegExp(`/dhcp-client-${n.ifname}-\\d+\\.scope$`));
    // The worker unit ran at Nice=5 (the udev program's systemd-run), and the client inherited it.
    expect(mine[0], 'its nice value').to.match(new RegExp(`^\\d+ nice=${DAEMON_NICE} `));
  }

  /** The per-address rules into a table (the cross-subnet rules, `from SUBNET to SUBNET`, carry a dst). */
  async function addressRules(table: string): Promise<Row[]> {
    return (await ipj('-4 rule show')).filter((r) => r.table === table && r.dst === undefined);
  }

  /** The NIC has its DHCP address and every secondary IP, a rule per address into its table, and the table's default route. */
  async function expectConfigured(n: vm.Nic): Promise<void> {
    const link = (await ipj(`addr show dev ${n.ifname}`))[0] ?? {};
    const v4 = ((link.addr_info as Row[] | undefined) ?? []).filter((a) => a.family === 'inet').map((a) => a.local);
    expect(v4, `${n.ifname} addresses`).to.include.members([n.ip, ...(n.secondary ?? [])]);
    const table = String(tableOf(n));
    const rules = await addressRules(table);
    expect(rules.map((r) => r.src).sort(), `rules into table ${table}`).to.deep.equal([n.ip, ...(n.secondary ?? [])].sort());
    for (const r of rules) expect(r, 'rule owned by cloud-hotplug').to.include({ protocol: '199', priority: tableOf(n) });
    // Ahead of the per-NIC rules: main's more specific routes (bridges, operator routes) still win.
    const main = (await ipj('-4 rule show')).filter((r) => String(r.protocol) === '199' && r.suppress_prefixlen !== undefined);
    expect(main.map((r) => [r.priority, r.src, ['254', 'main'].includes(String(r.table)) ? 'main' : r.table, r.suppress_prefixlen]), 'the main-table rule ahead of ours').to.deep.equal([[9999, 'all', 'main', 0]]);
    const routes = await ipj(`-4 route show table ${table}`);
    expect(routes.find((r) => r.dst === 'default'), `default route in table ${table}`).to.include({ gateway: `10.0.${n.subnet}.1`, dev: n.ifname });
  }

  /** ifupdown: cloud-init rendered the NIC's DHCP stanza into its ENI file. */
  async function expectEniRendered(ifname: string): Promise<void> {
    expect(await out('cat /etc/network/interfaces.d/50-cloud-init'), 'rendered ENI config').to.match(new RegExp(`iface ${ifname} inet dhcp`));
  }

  /** ifupdown, after an unplug: no stanza for the NIC in the ENI file, no ifupdown state for it. */
  async function expectEniGone(ifname: string): Promise<void> {
    expect(await out('cat /etc/network/interfaces.d/50-cloud-init'), 'stanza left in ENI config').to.not.match(new RegExp(`\\b${ifname}\\b`));
    expect((await sh(`test -e /run/network/ifstate.${ifname}`)).exitCode, 'ifupdown state file left').to.not.equal(0);
  }

  /**
   * The running daemon at what its unit declares: nice (field 19 of /proc/PID/stat) for it and
   * every process of its cgroup (its Python bridge), its cgroup's cpu.weight (the kernel's
   * file and systemd's view), and the unit's node flags on its command line, in order.
   */
  async function expectDaemonPriority(): Promise<void> {
    const want = daemonUnitDeclares();
    const pid = (await out(`systemctl show -p MainPID --value ${DAEMON_SERVICE}`)).trim();
    expect(pid, 'the daemon MainPID').to.match(/^[1-9]\d*$/);
    // cgroup v2: one line, 0::/system.slice/cloud-hotplug-daemon.service
    const cg = (await out(`cat /proc/${pid}/cgroup`)).trim();
    expect(cg, `cgroup of ${pid}`).to.equal(`0::/system.slice/${DAEMON_SERVICE}`);
    const dir = `/sys/fs/cgroup${cg.slice(3)}`;
    expect((await out(`cat ${dir}/cpu.weight`)).trim(), `${dir}/cpu.weight`).to.equal(String(want.cpuWeight));
    expect((await out(`systemctl show -p CPUWeight --value ${DAEMON_SERVICE}`)).trim(), 'systemctl show -p CPUWeight').to.equal(String(want.cpuWeight));
    // A process that ends between the listing and its read is passed over.
    const stats = (await out(`for p in $(cat ${dir}/cgroup.procs); do s=$(cat /proc/$p/stat 2>/dev/null) && echo "$s"; done; true`)).split('\n').filter(Boolean);
    const nices = Object.fromEntries(stats.map((l) => [l.split(' ')[0]!, niceOfStat(l)]));
    expect(nices[pid], `nice of the daemon (${pid})`).to.equal(want.nice);
    expect(nices, 'nice of every process in its cgroup').to.deep.equal(Object.fromEntries(Object.keys(nices).map((p) => [p, want.nice])));
    const argv = (await out(`tr '\\0' '\\n' </proc/${pid}/cmdline`)).split('\n').filter(Boolean);
    expect(argv.slice(1, 1 + want.nodeFlags.length), `node flags of: ${argv.join(' ')}`).to.deep.equal(want.nodeFlags);
  }

  return { sh, out, diagnostics, recentEvents, ipj, addressRules, expectConfigured, expectDhcpClientOutlivesWorker, expectEniRendered, expectEniGone, expectDaemonPriority };
}
