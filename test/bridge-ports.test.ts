/**
 * The bridge's datasource-agnostic ports and its OpenStack-family side (hb_ports.py), under the
 * real cloud-init 22.4: network_data.json checked link by link, converted by cloud-init's own
 * convert_net_json for the NICs present, parsed into ports; the one-request probe of a config
 * drive. Runs the bridge module under /usr/bin/python3, no instance (NICs are given, not read).
 */
import { expect } from 'chai';
import { execa } from 'execa';
import { existsSync, mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BRIDGE_PY } from '../bridge/index.js';
import { checkReply } from '../bridge/index.js';

const ND = {
  links: [
    { id: 'tap1', type: 'ovs', ethernet_mac_address: 'FA:16:3E:00:00:01', mtu: 1500 },
    { id: 'tap2', type: 'ovs', ethernet_mac_address: 'fa:16:3e:00:00:02' },
    { id: 'tap3', type: 'ovs', ethernet_mac_address: 'fa:16:3e:00:00:03' },
  ],
  networks: [
    { id: 'n0', type: 'ipv4_dhcp', link: 'tap1' },
    { id: 'n1', type: 'ipv4', link: 'tap1', ip_address: '10.0.1.20', netmask: '255.255.255.0', routes: [{ network: '0.0.0.0', netmask: '0.0.0.0', gateway: '10.0.1.1' }] },
    { id: 'n2', type: 'ipv4', link: 'tap2', ip_address: '10.0.2.30', netmask: '255.255.255.0', routes: [{ network: '0.0.0.0', netmask: '0.0.0.0', gateway: '10.0.2.1' }, { network: '10.0.9.0', netmask: '255.255.255.0', gateway: '10.0.2.1' }] },
    { id: 'n3', type: 'ipv6', link: 'tap2', ip_address: 'fd00:2::10', netmask: 'ffff:ffff:ffff:ffff::' },
    { id: 'n4', type: 'ipv4_dhcp', link: 'tap3' },
  ],
  services: [{ type: 'dns', address: '10.0.1.1' }, { type: 'dns', address: '$(reboot)' }],
};

const SCRIPT = String.raw`
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("hotplug_bridge", sys.argv[1])
hb = importlib.util.module_from_spec(spec)
spec.loader.exec_module(hb)
import hb_ports
from cloudinit.sources.DataSourceOpenStack import DataSourceOpenStack
from cloudinit.sources.DataSourceConfigDrive import DataSourceConfigDrive

nd = json.loads(sys.argv[2])
# eth0 and eth1 are on the system; tap3's NIC is not (yet).
hb_ports._known_macs = lambda: {"fa:16:3e:00:00:01": "eth0", "fa:16:3e:00:00:02": "eth1"}
out = {}
clean, rej = hb_ports.sanitize_network_json(nd)
out["clean_services"] = clean["services"]
ds = DataSourceOpenStack.__new__(DataSourceOpenStack)
ds.network_json, ds.ds_cfg = clean, {}
out["netcfg"] = hb_ports.openstack_network_config(ds)
out["ports"] = hb_ports.ports(ds, None)

bad = json.loads(sys.argv[2])
bad["networks"][2]["ip_address"] = "10.0.2.31; reboot"
bad["links"].append({"id": "bond0", "type": "bond", "ethernet_mac_address": "fa:16:3e:00:00:09", "bond_links": ["tap1"]})
c2, r2 = hb_ports.sanitize_network_json(bad, clean)
out["rejected"] = dict(r2)
out["entries"] = r2.entries
out["kept_links"] = [l["id"] for l in c2["links"]]
out["kept_tap2"] = [n.get("ip_address") for n in c2["networks"] if n["link"] == "tap2"]
c3, r3 = hb_ports.sanitize_network_json(bad)
out["without_old"] = [l["id"] for l in c3["links"]]

ds.ds_cfg = {"apply_network_config": False}
out["disabled"] = hb_ports.openstack_network_config(ds)

cd = DataSourceConfigDrive.__new__(DataSourceConfigDrive)
cd.source, cd.network_json = sys.argv[3], clean
hb.S.md_fallback = None
out["probe_drive"] = hb_ports.probe(cd, 1)
out["static"] = [hb_ports.metadata_static(cd), hb_ports.metadata_static(ds)]
hb.S.md_fallback = "http://169.254.169.254"
out["static_fallback"] = hb_ports.metadata_static(cd)
out["set_sources_bad"] = hb.set_sources("http://x/; reboot")
sys.__stdout__.write(json.dumps(out))
`;

describe('bridge: ports and network_data.json (hb_ports, real cloud-init 22.4)', function () {
  this.timeout(60_000);
  let out: any;
  let drive: string;
  before(async function () {
    expect(existsSync('/usr/bin/python3'), '/usr/bin/python3 with cloud-init (scripts/setup.sh installs it)').to.equal(true);
    drive = mkdtempSync(join(tmpdir(), 'cd-'));
    mkdirSync(join(drive, 'openstack/latest'), { recursive: true });
    writeFileSync(join(drive, 'openstack/latest/network_data.json'), JSON.stringify({ links: [ND.links[0], { id: 'x', type: 'ovs', ethernet_mac_address: 'nope' }], networks: [] }));
    const r = await execa('/usr/bin/python3', ['-c', SCRIPT, BRIDGE_PY, JSON.stringify(ND), drive], { reject: false });
    expect(r.exitCode, r.stderr).to.equal(0);
    out = JSON.parse(r.stdout);
  });
  after(() => rmSync(drive, { recursive: true, force: true }));

  it("the network config is cloud-init's conversion for the NICs present; only the first port keeps a default route", () => {
    const phys = out.netcfg.config.filter((c: any) => c.type === 'physical');
    expect(phys.map((c: any) => [c.name, c.mac_address])).to.deep.equal([['eth0', 'fa:16:3e:00:00:01'], ['eth1', 'fa:16:3e:00:00:02']]);
    const eth0Routes = phys[0].subnets.flatMap((s: any) => s.routes ?? []);
    expect(eth0Routes).to.deep.equal([{ network: '0.0.0.0', netmask: '0.0.0.0', gateway: '10.0.1.1' }]);
    const eth1Routes = phys[1].subnets.flatMap((s: any) => s.routes ?? []);
    expect(eth1Routes, 'a second default route in main would take the primary’s traffic').to.deep.equal([{ network: '10.0.9.0', netmask: '255.255.255.0', gateway: '10.0.2.1' }]);
    expect(out.disabled).to.equal(null);
  });

  it('ports: every link of network_data.json (present or not), index by place, DHCP or static with prefixes, gateway and routes from metadata; schema-valid', () => {
    expect(out.ports['fa:16:3e:00:00:01']).to.deep.equal({
      mac: 'fa:16:3e:00:00:01', index: 0, name: 'eth0', dhcp4: true, dhcp6: false,
      ipv4: [{ address: '10.0.1.20', prefixlen: 24 }], ipv6: [], gateway4: '10.0.1.1', gateway6: null, routes: [],
    });
    expect(out.ports['fa:16:3e:00:00:02']).to.deep.equal({
      mac: 'fa:16:3e:00:00:02', index: 1, name: 'eth1', dhcp4: false, dhcp6: false,
      ipv4: [{ address: '10.0.2.30', prefixlen: 24 }], ipv6: [{ address: 'fd00:2::10', prefixlen: 64 }], gateway4: '10.0.2.1', gateway6: null,
      routes: [{ dst: '10.0.9.0/24', gateway: '10.0.2.1' }],
    });
    expect(out.ports['fa:16:3e:00:00:03']).to.include({ index: 2, name: null, dhcp4: true });
    const summary = { datasource: 'DataSourceOpenStackLocal', dsname: 'OpenStackLocal', instance_id: 'u', platform: 'openstack', subplatform: null, cloud_name: 'openstack', macs: [], primary_mac: null, nics: {}, hotplug: { enabled: true, reason: 'r' }, ports: out.ports };
    expect(checkReply('summary', { ok: true, summary }).ports).to.deep.equal(out.ports);
  });

  it('hostile values: the link is refused with the reason (a known one keeps its previous entry), bonds are not ours, bad DNS services dropped', () => {
    expect(out.clean_services).to.deep.equal([{ type: 'dns', address: '10.0.1.1' }]);
    expect(out.rejected['fa:16:3e:00:00:02']).to.match(/network "n2" has an invalid address.*keeps its previous metadata/);
    expect(out.rejected['fa:16:3e:00:00:09']).to.match(/bond is not handled/);
    expect(out.entries['fa:16:3e:00:00:02']).to.include({ key_is_mac: true, mac: 'fa:16:3e:00:00:02' });
    expect(out.kept_links, 'in place: its index (table) stays').to.deep.equal(['tap1', 'tap2', 'tap3']);
    expect(out.kept_tap2).to.deep.equal(['10.0.2.30', 'fd00:2::10']);
    expect(out.without_old).to.deep.equal(['tap1', 'tap3']);
  });

  it('a config drive is probed by one file read and says it is static; with a fallback it is not; set_sources refuses a bad URL', () => {
    expect(out.probe_drive).to.deep.equal({ supported: true, macs: ['fa:16:3e:00:00:01'], others: ['x'], static: true });
    expect(out.static).to.deep.equal([true, false]);
    expect(out.static_fallback).to.equal(false);
    expect(out.set_sources_bad.ok).to.equal(false);
    expect(out.set_sources_bad.error).to.match(/not an http\(s\) base URL/);
  });
});
