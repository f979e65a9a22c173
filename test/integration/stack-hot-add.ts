/**
 * The hot-add check the lab's stack suites share (nm.test.ts, networkd.test.ts): on a stack that
 * runs the NIC's DHCP itself, a hot-added NIC is configured with its addresses, our rules and
 * table routes, and the gateway taken from the stack's own lease.
 */
import { expect } from 'chai';
import { lab, ipJson, ourRouting, hotplug, waitRecord } from './helpers.js';

/**
 * Attaches a NIC (device 1, subnet 2, two secondary IPs) and checks: its add record says
 * configured; after `settled` (the stack's own view of the NIC, checked by the suite) it has its
 * DHCP address and both secondary IPs, a rule per address into `table`, the cross-subnet rule to
 * eth0's subnet and main's rule ahead of them, the table's routes via the lease's gateway, and
 * `hotplug routes` names the lease as the gateway's source. Returns the NIC.
 */
export async function expectStackHotAdd(name: string, table: number, settled: (nic: lab.NicInfo) => Promise<void> = async () => {}): Promise<lab.NicInfo> {
  const nic = await lab.attach({ name, ips: 2, subnet: 2, deviceNumber: 1 });
  const rec = await waitRecord(name, (r) => r.iface === nic.ifname && r.action === 'add');
  expect(rec.result).to.equal('configured');
  await settled(nic);
  const addrs = (await ipJson(name, ['-4', 'addr', 'show', 'dev', nic.ifname]))[0]!.addr_info.map((a: { local: string }) => a.local).sort();
  expect(addrs).to.deep.equal([...nic.ips].sort());
  expect(await ourRouting(name, table)).to.deep.equal({
    // Per address into the NIC's table; from its subnet to eth0's (replies to a peer there leave by this NIC); main's rule ahead of them.
    rules: [...nic.ips.map((ip) => `${table} from ${ip} lookup ${table}`), `9998 from ${nic.cidr} to 10.0.1.0/24 lookup ${table}`, '9999 from all lookup 254 suppress_prefixlength 0'].sort(),
    routes: [`${nic.cidr} dev ${nic.ifname} proto 199`, `default via ${nic.gateway} dev ${nic.ifname} proto 199`].sort(),
  });
  const routes = await hotplug(name, ['routes', '--json']);
  expect(routes.exitCode, routes.stderr).to.equal(0);
  const n = (JSON.parse(routes.stdout).nics as { ifname: string; gateway4: unknown }[]).find((x) => x.ifname === nic.ifname);
  expect(n?.gateway4, "the gateway comes from the stack's DHCP lease").to.deep.equal({ address: nic.gateway, source: 'lease' });
  return nic;
}
