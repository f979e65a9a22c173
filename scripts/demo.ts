/**
 * The demo: boot a lab cloud running the real cloud-init, wire cloud-hotplug into the
 * instance, hot-attach a NIC (a real kernel add event), and show what got configured;
 * then detach it and show that nothing of it is left. `--keep` leaves the lab running;
 * `--cloud openstack|configdrive` boots a Nova guest instead of an EC2 one.
 */
import * as lab from './lab/index.js';
import { fileURLToPath } from 'node:url';

const name = 'demo';
const keep = process.argv.includes('--keep');
const cloudArg = process.argv.indexOf('--cloud');
const cloud = (cloudArg >= 0 ? process.argv[cloudArg + 1] : 'ec2') as 'ec2' | 'openstack' | 'configdrive';
if (!['ec2', 'openstack', 'configdrive'].includes(cloud)) {
  process.stderr.write(`demo: --cloud must be ec2, openstack or configdrive\n`);
  process.exit(2);
}
const BOOT = {
  ec2: 'fake EC2 metadata (IMDSv2), DHCP',
  openstack: "a Nova guest (DMI 'OpenStack Nova'), Nova's metadata service with network_data.json, DHCP",
  configdrive: "a Nova guest with a config drive (config-2 files, written once at boot) and the metadata service beside it",
}[cloud];
const CLI = fileURLToPath(new URL('../src/cli.js', import.meta.url));
const ENV = { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' };

const say = (s: string) => process.stdout.write(`\n\x1b[1m== ${s}\x1b[0m\n`);
async function inside(argv: string[], show = true): Promise<string> {
  const r = await lab.exec(argv, { name, cleanEnv: true, env: ENV });
  if (show) process.stdout.write(r.stdout + r.stderr);
  if (r.exitCode !== 0) throw new Error(`${argv.join(' ')} failed (${r.exitCode})`);
  return r.stdout;
}
const hotplug = (...args: string[]) => inside([process.execPath, CLI, ...args]);

async function waitFor(what: string, fn: () => Promise<boolean>, ms = 30_000): Promise<number> {
  const t0 = Date.now();
  while (!(await fn())) {
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return Date.now() - t0;
}

async function main() {
  await lab.down({ name, quiet: true }).catch(() => {});
  say(`Booting a lab cloud: ${BOOT}, and an instance running the real cloud-init`);
  const up = await lab.up({ name, mode: 'faithful', cloud });
  await inside(['cloud-init', 'status', '--long']);
  say('Wiring cloud-hotplug into the instance (udev rule)');
  await hotplug('install');
  if (cloud === 'configdrive') {
    say('The drive never lists a NIC attached later: opting in to ask the metadata service for those');
    await lab.writeFileInInstance('/etc/cloud-hotplug/config.yaml', 'configdrive:\n  metadata_fallback: true\n', { name });
    await inside(['cat', '/etc/cloud-hotplug/config.yaml']);
  }
  await hotplug('status');

  say(
    cloud === 'ec2'
      ? 'Hot-attaching a NIC with 2 secondary IPs (a veth moved into the instance: a real kernel add event)'
      : 'Hot-attaching a port with 3 fixed IPs (the first by DHCP, two static in network_data.json; a real kernel add event)',
  );
  const nic = await lab.attach({ name, ips: 2 });
  process.stdout.write(`attached ${nic.ifname} ${nic.mac} in ${nic.cidr}; metadata lists ${nic.ips.join(', ')}\n`);
  const handled = (result: string) => async () =>
    (await inside(['cat', '/run/cloud-hotplug/recent-events.json'], false).catch(() => '[]')).includes(`"mac": "${nic.mac}"`) &&
    JSON.parse(await inside(['cat', '/run/cloud-hotplug/recent-events.json'], false)).some((r: { mac?: string; result: string }) => r.mac === nic.mac && r.result === result);
  const ms = await waitFor(`${nic.ifname} configured`, handled('configured'));
  say(`Configured with no command typed, ${ms} ms after the attach`);
  await inside(['ip', '-br', 'addr', 'show', nic.ifname]);
  await inside(['sh', '-c', `grep -A6 "iface ${nic.ifname}" /etc/network/interfaces.d/50-cloud-init`]);
  say('Policy routing: replies from the secondary NIC leave through it');
  await inside(['ip', 'rule', 'show']);
  await inside(['ip', 'route', 'show', 'table', 'all', 'proto', '199']);
  say('The event log');
  await inside(['tail', '-n', '3', '/var/log/cloud-hotplug.log']);

  say(`Detaching ${nic.ifname} (kernel remove event)`);
  await lab.detach(nic.ifname, { name });
  await waitFor('removal handled', handled('removed'));
  const left = await inside(['sh', '-c', 'ls /run/dhclient.$1.pid /run/network/ifstate.$1 2>/dev/null; grep -c "iface $1 " /etc/network/interfaces.d/50-cloud-init || true', 'sh', nic.ifname], false);
  process.stdout.write(`left of ${nic.ifname}: ${left.trim() === '0' ? 'nothing (no dhclient pid file, no ifstate, no stanza)' : left}\n`);
  await inside(['tail', '-n', '1', '/var/log/cloud-hotplug.log']);
  await hotplug('status');
  process.stdout.write(`\nlab booted in ${((up.upMs ?? 0) / 1000).toFixed(1)} s; ${keep ? `kept running: node dist/scripts/lab/cli.js exec --name ${name} -- bash` : 'taking it down'}\n`);
}

main()
  .catch((e) => {
    process.stderr.write(`demo: ${(e as Error).message}\n`);
    process.exitCode = 1;
  })
  .finally(async () => {
    if (!keep) await lab.down({ name, quiet: true }).catch(() => {});
  });
