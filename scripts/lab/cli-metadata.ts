/** `lab metadata …`: the instance metadata model and the IMDS (edits, tokens, stop/start, stats, faults). */
import type { Command } from 'commander';
import { readFile } from 'node:fs/promises';
import * as lab from './index.js';
import { int, nameOpt, num, out } from './cli-common.js';

function printStats(s: lab.ImdsStats): void {
  process.stdout.write(
    [
      `total ${s.total}, token PUTs ${s.tokenPuts}, 401s ${s.unauthorized}, faults injected ${s.faultsInjected} (since ${s.since})`,
      `answering ${s.answering}, tokens ${s.httpTokens}, fault ${s.fault ? JSON.stringify(s.fault) : 'none'}`,
      'by status: ' + Object.entries(s.byStatus).map(([k, v]) => `${k}=${v}`).join(' '),
      'by prefix:',
      ...Object.entries(s.byPrefix)
        .sort()
        .map(([k, v]) => `  ${k} ${v}`),
    ].join('\n') + '\n',
  );
}

export function registerMetadata(program: Command): void {
  const md = program.command('metadata').description('the instance metadata (model and IMDS)');
  md.command('show')
    .addOption(nameOpt())
    .option('--json', 'print JSON')
    .action(async (o) => {
      const v = await lab.showMetadata({ name: o.name });
      if (o.json) return out(v);
      const m = v.model;
      const lines = [
        `instance ${m.instanceId} ${m.instanceType} ${m.availabilityZone} vpc ${m.vpcId} tokens ${m.httpTokens}`,
        `user-data: ${m.userData === null ? '(none)' : JSON.stringify(m.userData.slice(0, 120))}`,
      ];
      for (const n of [...m.nics].sort((a, b) => a.deviceNumber - b.deviceNumber)) {
        const hidden = !v.visibleMacs.includes(n.mac);
        lines.push(`  ${n.ifname ?? '?'} dev ${n.deviceNumber} ${n.mac} ${n.interfaceId} subnet ${n.subnet} ${n.ips.join(',')}${hidden ? ' (hidden: lag)' : ''}`);
      }
      process.stdout.write(lines.join('\n') + '\n');
    });
  md.command('add-ip')
    .argument('<iface>')
    .argument('[n]', 'how many', int, 1)
    .addOption(nameOpt())
    .action(async (iface, n, o) => {
      const ips = await lab.addIp(iface, n, { name: o.name });
      process.stdout.write(ips.join('\n') + '\n');
    });
  md.command('remove-ip')
    .argument('<iface>')
    .argument('<ip>')
    .addOption(nameOpt())
    .action(async (iface, ip, o) => {
      await lab.removeIp(iface, ip, { name: o.name });
    });
  md.command('remove-nic')
    .description('drop a NIC from metadata only')
    .argument('<iface>')
    .addOption(nameOpt())
    .action(async (iface, o) => {
      await lab.removeNicMetadata(iface, { name: o.name });
    });
  md.command('set-userdata')
    .argument('<file>', "user-data file ('-' for none)")
    .addOption(nameOpt())
    .action(async (file, o) => {
      const content = file === '-' ? null : await readFile(file, 'utf8');
      await lab.setUserdata(content, { name: o.name });
    });
  md.command('lag')
    .description('hide a NIC from metadata for SECONDS from now (0: show now)')
    .argument('<iface>')
    .argument('<seconds>', 'seconds', num)
    .addOption(nameOpt())
    .action(async (iface, seconds, o) => {
      await lab.setLag(iface, seconds, { name: o.name });
    });
  md.command('tokens')
    .description('IMDSv2 tokens required, or optional (IMDSv1 allowed)')
    .argument('<mode>', 'required | optional')
    .addOption(nameOpt())
    .action(async (mode, o) => {
      await lab.setHttpTokens(mode, { name: o.name });
    });
  md.command('stop')
    .description('the IMDS stops answering (connection refused)')
    .addOption(nameOpt())
    .action(async (o) => {
      await lab.imdsStop({ name: o.name });
    });
  md.command('start')
    .description('the IMDS answers again')
    .addOption(nameOpt())
    .action(async (o) => {
      await lab.imdsStart({ name: o.name });
    });
  md.command('stats')
    .description('IMDS request counts')
    .addOption(nameOpt())
    .option('--reset', 'reset the counters (after printing them)')
    .option('--json', 'print JSON')
    .action(async (o) => {
      const s = await lab.imdsStats({ name: o.name, reset: o.reset });
      if (o.json) out(s);
      else printStats(s);
    });
  md.command('requests')
    .description('requests the IMDS served (most recent 5000)')
    .addOption(nameOpt())
    .option('--since <ms>', 'epoch ms', int, 0)
    .action(async (o) => out(await lab.imdsRequests(o.since, { name: o.name })));
  md.command('fault')
    .description('inject a fault: http<code> (e.g. http500, http404, http429), hang, truncate, reset, refuse-token, slow; or "clear"')
    .argument('<mode>')
    .addOption(nameOpt())
    .option('--path <prefix>', 'only requests under this path (with or without the version)')
    .option('--count <n>', 'only the next n matching requests', int)
    .option('--delay <ms>', "delay for 'slow'", int)
    .action(async (mode, o) => {
      if (mode === 'clear') await lab.clearFault({ name: o.name });
      else await lab.setFault({ mode, pathPrefix: o.path, count: o.count, delayMs: o.delay }, { name: o.name });
    });
}
