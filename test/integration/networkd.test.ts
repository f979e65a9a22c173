/**
 * systemd-networkd in the lab (`lab up --stack networkd`): networkd and a system D-Bus in the
 * instance, cloud-init with the networkd renderer and activator, our udev hook installed. Hot-add
 * (networkd applies the new NIC's .network only because the stack reloads it: cloud-init 22.4.2's
 * activator just sets the link up), policy routing via networkd's lease gateway, networkd's restart
 * keeping our rules (the drop-in `hotplug install` writes), hot-remove leaving nothing.
 */
import { expect } from 'chai';
import { lab, ourRouting, hotplug, readIn, labFixture, waitRecord, assertLabGone, waitFor } from './helpers.js';
import { expectStackHotAdd } from './stack-hot-add.js';
import { startRun } from '../../scripts/results/record.js';
import { writeLabStackResults } from './stack-results.js';

const NAME = 't-nd';
const TABLE = 10001;

const ours = () => ourRouting(NAME, TABLE);

/** networkd's link state file for the NIC (KEY=value), or null. */
async function linkState(ifname: string): Promise<string | null> {
  const idx = (await readIn(NAME, `/sys/class/net/${ifname}/ifindex`))?.trim();
  return idx ? readIn(NAME, `/run/systemd/netif/links/${idx}`) : null;
}

describe('systemd-networkd stack in the lab (t-nd: networkd + D-Bus in the instance, cloud-init networkd renderer and activator)', function () {
  const fx = labFixture(NAME, { stack: 'networkd', install: true, config: 'retry:\n  budget_seconds: 6\n' });
  const run = startRun(['test/results']);
  let nic: lab.NicInfo;
  let ifindex = '';

  before(async () => {
    await fx.boot();
  });
  after(async function () {
    const file = writeLabStackResults('networkd', run, this.test?.parent);
    if (file) console.log(`      results: ${file}${run.clean ? '' : ' (DIRTY tree)'}`);
    await fx.teardown();
    expect(await assertLabGone(NAME)).to.deep.equal([]);
  });

  it("boot: networkd configured eth0 with cloud-init's .network; `hotplug status` says networkd", async () => {
    expect(await linkState('eth0')).to.match(/^ADMIN_STATE=configured$/m).and.match(/^NETWORK_FILE=\/etc\/systemd\/network\/10-cloud-init-eth0\.network$/m);
    const r = await hotplug(NAME, ['status', '--json', '--live']);
    expect(r.exitCode, r.stderr).to.equal(0);
    expect(JSON.parse(r.stdout).network).to.deep.equal({ renderer: 'networkd', activator: 'NetworkdActivator', stack: 'networkd' });
    // As at a real boot, networkd runs with the drop-in `hotplug install` wrote (it reads it when it starts).
    await lab.restartNetworkd({ name: NAME, quiet: true });
  });

  it("hot-add: networkd configures the NIC with its .network, DHCP address and secondary IPs, rules and table routes via networkd's lease gateway", async () => {
    nic = await expectStackHotAdd(NAME, TABLE, async (n) => {
      ifindex = (await readIn(NAME, `/sys/class/net/${n.ifname}/ifindex`))!.trim();
      // networkd says "configuring" until its DHCP (and IPv6 link-local) settle, "unmanaged" without a .network it loaded
      const st = await waitFor('networkd configured the NIC', async () => {
        const s = await linkState(n.ifname);
        return s && /^ADMIN_STATE=configured$/m.test(s) ? s : null;
      }, 30_000, 200).catch(async () => (await linkState(n.ifname)) ?? 'no link state');
      expect(st).to.match(/^ADMIN_STATE=configured$/m).and.include(`NETWORK_FILE=/etc/systemd/network/10-cloud-init-${n.ifname}.network`);
    });
  });

  it('a networkd restart keeps our rules (drop-in: ManageForeignRoutingPolicyRules=no)', async () => {
    const before = (await ours()).rules;
    await lab.restartNetworkd({ name: NAME, quiet: true, ifname: nic.ifname });
    expect((await ours()).rules).to.deep.equal(before);
  });

  it('hot-remove leaves nothing: .network file, lease and link state, rules, table routes, recorded interface', async () => {
    await lab.detach(nic.ifname, { name: NAME });
    const rec = await waitRecord(NAME, (r) => r.iface === nic.ifname && r.action === 'remove');
    expect(rec.result).to.equal('removed');
    expect(await readIn(NAME, `/etc/systemd/network/10-cloud-init-${nic.ifname}.network`)).to.equal(null);
    expect(await readIn(NAME, `/run/systemd/netif/leases/${ifindex}`)).to.equal(null);
    expect(await readIn(NAME, `/run/systemd/netif/links/${ifindex}`)).to.equal(null);
    expect(await ours()).to.deep.equal({ rules: [], routes: [] });
    expect((await readIn(NAME, '/run/cloud-hotplug/known-interfaces.json')) ?? '').to.not.include(nic.ifname);
    expect(await linkState('eth0')).to.match(/^ADMIN_STATE=configured$/m);
  });
});
