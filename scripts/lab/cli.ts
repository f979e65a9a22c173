#!/usr/bin/env node
/**
 * `lab`: a lab cloud in network namespaces running the real cloud-init (see index.ts).
 * Progress goes to stderr; results to stdout (JSON with --json). The client and metadata
 * command groups are in cli-client.ts and cli-metadata.ts.
 */
import { Command, Option } from 'commander';
import * as lab from './index.js';
import { UserError, oneLine } from '../../src/util/errors.js';
import { addExec, int, nameOpt, num, out } from './cli-common.js';
import { registerClient } from './cli-client.js';
import { registerMetadata } from './cli-metadata.js';

function printStatus(st: lab.LabStatus): void {
  const lines: string[] = [];
  lines.push(`lab ${st.name}: ${st.exists ? `${st.phase ?? '?'} (${st.mode ?? '?'})` : 'not created'}${st.error ? ` error: ${st.error}` : ''}`);
  lines.push(`  dir ${st.labDir}`);
  lines.push(
    `  netns ${st.netns.cloud} ${st.netns.cloudExists ? 'present' : 'absent'}, ${st.netns.inst} ${st.netns.instExists ? 'present' : 'absent'}, ${st.netns.client} ${st.netns.clientExists ? 'present' : 'absent'}`,
  );
  if (st.client) lines.push(`  client ${st.client.address} (${st.client.cidr}, via ${st.client.gateway})`);
  if (st.sourceCheckDrops !== null) lines.push(`  source/destination check: ${st.sourceCheckDrops} packet(s) dropped`);
  for (const pr of st.processes) lines.push(`  ${pr.what.padEnd(16)} pid ${pr.pid} ${pr.alive ? 'alive' : 'DEAD'}`);
  if (st.interfaces.length) {
    lines.push('  instance interfaces:');
    for (const i of st.interfaces) lines.push(`    ${i.ifname.padEnd(8)} ${i.mac.padEnd(18)} ${i.state.padEnd(8)} ${i.addrs.join(' ')}`);
  }
  if (st.nics.length) {
    lines.push('  attached NICs:');
    for (const n of st.nics) {
      const vis = n.visibleAt && n.visibleAt > Date.now() ? ` (metadata in ${((n.visibleAt - Date.now()) / 1000).toFixed(1)}s)` : '';
      lines.push(`    ${n.ifname.padEnd(6)} dev ${n.deviceNumber} ${n.mac} subnet ${n.subnet} ${n.ips.join(',')}${n.inMetadata ? '' : ' (not in metadata)'}${vis}`);
    }
  }
  for (const n of st.metadataOnlyNics) lines.push(`  in metadata only (detached): ${n.ifname ?? '?'} ${n.mac} dev ${n.deviceNumber}`);
  if (st.imds) {
    lines.push(
      `  imds: ${st.imds.answering ? 'answering' : 'STOPPED'}, tokens ${st.imds.httpTokens}, ${st.imds.total} requests (${st.imds.tokenPuts} token PUTs, ${st.imds.unauthorized} 401s)${st.imds.fault ? `, fault ${JSON.stringify(st.imds.fault)}` : ''}`,
    );
  }
  if (st.cloudInit) lines.push(`  cloud-init: ${st.cloudInit.status}${st.cloudInit.errors.length ? ` errors: ${st.cloudInit.errors.join('; ')}` : ''}`);
  if (st.upMs) lines.push(`  up took ${(st.upMs / 1000).toFixed(1)}s: ${st.stages.map((s) => `${s.name} ${(s.ms / 1000).toFixed(1)}s`).join(', ')}`);
  process.stdout.write(lines.join('\n') + '\n');
}

export function buildProgram(): Command {
  const program = new Command('lab')
    .description('lab cloud in network namespaces running the real cloud-init (EC2-like)')
    .enablePositionalOptions()
    .showHelpAfterError();

  program
    .command('up')
    .description('create the lab and boot cloud-init (idempotent)')
    .addOption(nameOpt())
    .addOption(new Option('--mode <mode>', 'faithful (AWS, IMDSv2 only, Ec2Local) or generic').choices(['faithful', 'generic']).default('faithful'))
    .option('--no-hotplug-userdata', 'user-data without updates.network.when [boot, hotplug]')
    .option('--userdata <file>', 'user-data from this file')
    .option('--no-udev', 'do not run systemd-udevd in the instance')
    .addOption(new Option('--stack <stack>', "the instance's network stack: ifupdown, nm (NetworkManager) or networkd (systemd-networkd), the last two with a system D-Bus in the instance").choices(['ifupdown', 'nm', 'networkd']).default('ifupdown'))
    .addOption(new Option('--pause-before <stage>', 'stop the boot before this stage').choices(['config', 'final']))
    .addOption(
      new Option('--cloud <cloud>', 'ec2 (IMDS), openstack (Nova metadata service, OpenStackLocal) or configdrive (a config-2 drive as a directory, plus the service)')
        .choices(['ec2', 'openstack', 'configdrive'])
        .default('ec2'),
    )
    .option('--ipv6', 'a dual-stack VPC: IPv6 subnets, router advertisements, DHCPv6 (eth0 gets an IPv6 address)')
    .option('--json', 'print the result as JSON')
    .action(async (o) => {
      const r = await lab.up({
        ipv6: o.ipv6,
        name: o.name,
        mode: o.mode,
        cloud: o.cloud,
        hotplugUserdata: o.hotplugUserdata,
        userdataFile: o.userdata,
        udev: o.udev,
        pauseBefore: o.pauseBefore,
        stack: o.stack,
      });
      if (o.json) out(r);
      else process.stdout.write(`lab ${r.name} ${r.alreadyUp ? 'already ' : ''}${r.phase} (${r.cloud === 'ec2' ? r.mode : r.cloud}), instance holder pid ${r.holderPid}${r.upMs ? `, up in ${(r.upMs / 1000).toFixed(1)}s` : ''}\n`);
    });

  program
    .command('resume')
    .description('continue a boot paused with --pause-before')
    .addOption(nameOpt())
    .option('--json', 'print the result as JSON')
    .action(async (o) => {
      const r = await lab.resume({ name: o.name });
      if (o.json) out(r);
      else process.stdout.write(`lab ${r.name} ${r.phase}\n`);
    });

  program
    .command('attach')
    .description('hotplug a NIC into the instance (veth → ethN, a real kernel add uevent)')
    .addOption(nameOpt())
    .option('--lag <seconds>', 'show the NIC in metadata only this long after the attach', num)
    .option('--ips <n>', 'secondary private IPs', int, 0)
    .option('--ipv6 <n>', 'IPv6 addresses (the first by DHCPv6; needs `up --ipv6`)', int, 0)
    .option('--subnet <k>', 'subnet index 1..4 (default 2)', int)
    .option('--device-number <n>', 'device number (default: lowest free)', int)
    .option('--count <n>', 'attach n NICs at once', int, 1)
    .option('--no-metadata', 'do not list the NIC in metadata')
    .option('--static', 'OpenStack: a port without DHCP (every fixed IP static in network_data.json)')
    .option('--json', 'print JSON')
    .action(async (o) => {
      const opts = { name: o.name, lagSeconds: o.lag, ips: o.ips, subnet: o.subnet, metadata: o.metadata, deviceNumber: o.deviceNumber, static: o.static, ipv6s: o.ipv6 };
      const nics = o.count === 1 ? [await lab.attach(opts)] : await lab.attachMany(o.count, opts);
      if (o.json) out(o.count === 1 ? nics[0] : nics);
      else for (const n of nics) process.stdout.write(`${n.ifname} ${n.mac} device-number ${n.deviceNumber} ${[...n.ips, ...(n.ipv6s ?? [])].join(',')} subnet ${n.subnet} (${n.cidr}, gw ${n.gateway})\n`);
    });

  program
    .command('detach')
    .description('unplug a NIC (a real kernel remove uevent) and drop it from metadata')
    .argument('<iface>', 'ethN or MAC')
    .addOption(nameOpt())
    .option('--keep-metadata', 'leave the NIC listed in metadata')
    .option('--json', 'print JSON')
    .action(async (iface, o) => {
      const r = await lab.detach(iface, { name: o.name, keepMetadata: o.keepMetadata });
      if (o.json) out(r);
      else process.stdout.write(`detached ${r.ifname} (${r.mac})${r.metadataRemoved ? '' : ', still in metadata'}\n`);
    });

  addExec(program, 'inside the instance', lab.exec);

  registerClient(program);

  program
    .command('srccheck')
    .description("the cloud's source/destination check: packets per NIC and source address, passed and dropped")
    .addOption(nameOpt())
    .option('--reset', 'zero the counters (after printing them)')
    .option('--json', 'print JSON')
    .action(async (o) => {
      const r = await lab.sourceCheck({ name: o.name, reset: o.reset });
      if (o.json) return out(r);
      if (!r.present) {
        process.stdout.write('no source/destination check in this lab (made by an older lab)\n');
        return;
      }
      const row = (f: lab.SourceCheckFlow) => `  ${(f.ifname ?? '-').padEnd(6)} ${f.vif.padEnd(7)} from ${f.saddr.padEnd(15)} ${f.packets} pkt ${f.bytes} B`;
      const lines = [`dropped: ${r.drops} packet(s)`, 'passed:', ...r.passed.map(row), 'dropped (source not in the NIC\'s subnet):', ...r.dropped.map(row)];
      process.stdout.write(lines.join('\n') + '\n');
    });

  registerMetadata(program);

  program
    .command('status')
    .description('namespaces, processes, interfaces, NICs, IMDS stats, cloud-init status')
    .addOption(nameOpt())
    .option('--json', 'print JSON')
    .action(async (o) => {
      const st = await lab.status({ name: o.name });
      if (o.json) out(st);
      else printStatus(st);
    });

  program
    .command('restart-nm')
    .description("restart the instance's NetworkManager (labs up with --stack nm), as systemctl restart would")
    .addOption(nameOpt())
    .action(async (o) => {
      const pid = await lab.restartNetworkManager({ name: o.name });
      process.stdout.write(`NetworkManager restarted, pid ${pid}\n`);
    });

  program
    .command('restart-networkd')
    .description("restart the instance's systemd-networkd (labs up with --stack networkd), as systemctl restart would")
    .addOption(nameOpt())
    .action(async (o) => {
      const pid = await lab.restartNetworkd({ name: o.name });
      process.stdout.write(`systemd-networkd restarted, pid ${pid}\n`);
    });

  program
    .command('udev-events')
    .description('net uevents seen in the instance (kernel and after udevd)')
    .addOption(nameOpt())
    .action(async (o) => out(await lab.udevEvents({ name: o.name })));

  program
    .command('list')
    .description('labs present on this machine')
    .action(async () => {
      for (const n of await lab.listLabs()) process.stdout.write(n + '\n');
    });

  program
    .command('down')
    .description('kill, unmount and delete everything of the lab (safe to repeat)')
    .addOption(nameOpt())
    .option('--json', 'print JSON')
    .action(async (o) => {
      const r = await lab.down({ name: o.name });
      if (o.json) out(r);
      if (r.remaining.length) {
        process.stderr.write(`lab ${r.name}: left behind: ${r.remaining.join('; ')}\n`);
        process.exitCode = 1;
      }
    });

  return program;
}

async function main(): Promise<void> {
  if (process.getuid && process.getuid() !== 0) {
    process.stderr.write('lab: must run as root (namespaces, mounts)\n');
    process.exit(1);
  }
  try {
    await buildProgram().parseAsync(process.argv);
  } catch (e) {
    if (e instanceof UserError) {
      process.stderr.write(`lab: ${e.message}\n`);
      process.exitCode = e.code;
    } else {
      process.stderr.write(`lab: ${oneLine(e)}\n`);
      if (process.env.LAB_DEBUG) process.stderr.write(`${(e as Error).stack}\n`);
      process.exitCode = 2;
    }
  }
}

void main();
