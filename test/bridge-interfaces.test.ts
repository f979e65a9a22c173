/**
 * The bridge's interface lists, computed in Python from cloud-init 22.4's own parse of a network
 * config (v1; v2 named by key, by set-name, by the system device that has the matched MAC), the
 * network_config entry point that returns them, and the renderer/activator cloud-init would pick.
 * Runs the real bridge module under /usr/bin/python3 (cloud-init's interpreter), no instance.
 */
import { expect } from 'chai';
import { execa } from 'execa';
import { existsSync } from 'node:fs';
import { BRIDGE_PY } from '../bridge/index.js';

const SCRIPT = String.raw`
import importlib.util, json, os, sys
spec = importlib.util.spec_from_file_location("hotplug_bridge", sys.argv[1])
hb = importlib.util.module_from_spec(spec)
spec.loader.exec_module(hb)

out = {}
out["v1"] = hb.net_interfaces({"version": 1, "config": [
    {"type": "physical", "name": "eth0", "mac_address": "0A:00:00:00:00:01", "subnets": [{"type": "dhcp"}]},
    {"type": "physical", "name": "eth1", "subnets": [{"type": "dhcp"}]},
    {"type": "vlan", "name": "eth1.10", "vlan_link": "eth1", "vlan_id": 10},
    {"type": "nameserver", "address": ["192.0.2.53"]}]})
out["v2"] = hb.net_interfaces({"version": 2, "ethernets": {
    "eth0": {"match": {"macaddress": "0A:00:00:00:00:01"}, "dhcp4": True},
    "ens6": {"dhcp4": True}}})
# What cloud-init's Ec2 datasource renders: set-name on every entry.
out["v2_set_name"] = hb.net_interfaces({"version": 2, "ethernets": {
    "eth0": {"match": {"macaddress": "0a:00:00:00:00:01"}, "set-name": "ens5", "dhcp4": True},
    "nic1": {"match": {"macaddress": "0A:00:00:00:00:02"}, "set-name": "ens6", "dhcp4": True}}})
# A device that exists here: cloud-init names the entry after it (no set-name).
dev = next((n for n in sorted(os.listdir("/sys/class/net")) if n != "lo" and os.path.exists("/sys/class/net/%s/device" % n)), None)
if dev:
    mac = open("/sys/class/net/%s/address" % dev).read().strip()
    out["lookup"] = {"dev": dev, "mac": mac, "r": hb.net_interfaces({"version": 2, "ethernets": {"wan": {"match": {"macaddress": mac.upper()}, "dhcp4": True}}})}
out["none"] = [hb.net_interfaces(None), hb.net_interfaces({})]

# The entry point: network_config returns the config and its interfaces.
class Init:
    datasource = object()
    def _find_networking_config(self):
        return ({"version": 2, "ethernets": {"eth0": {"match": {"macaddress": "0a:00:00:00:00:01"}, "set-name": "ens5"}}}, "ds")
hb.S.init, hb.S.ds = Init(), object()
out["network_config"] = hb.network_config()

from cloudinit import distros, helpers
out["stack"] = hb.network_stack(distros.fetch("debian")("debian", {}, helpers.Paths({})))
sys.__stdout__.write(json.dumps(out))
`;

describe("bridge: interfaces from cloud-init's own parse (real cloud-init 22.4)", function () {
  this.timeout(60_000);
  let out: any;
  before(async function () {
    expect(existsSync('/usr/bin/python3'), "/usr/bin/python3 with cloud-init (scripts/setup.sh installs it)").to.equal(true);
    const r = await execa('/usr/bin/python3', ['-c', SCRIPT, BRIDGE_PY], { reject: false });
    expect(r.exitCode, r.stderr).to.equal(0);
    out = JSON.parse(r.stdout);
  });

  it('v1: physical entries only, by their name, MAC lowercase or null', () => {
    expect(out.v1).to.deep.equal([
      { name: 'eth0', mac: '0a:00:00:00:00:01', id: 'eth0' },
      { name: 'eth1', mac: null, id: 'eth1' },
    ]);
  });

  it('v2: an entry whose MAC no device has, or with no match, is named by its key', () => {
    expect(out.v2).to.deep.equal([
      { name: 'eth0', mac: '0a:00:00:00:00:01', id: 'eth0' },
      { name: 'ens6', mac: null, id: 'ens6' },
    ]);
  });

  it('v2 with set-name: the name is set-name, the id the ethernets key', () => {
    expect(out.v2_set_name).to.deep.equal([
      { name: 'ens5', mac: '0a:00:00:00:00:01', id: 'eth0' },
      { name: 'ens6', mac: '0a:00:00:00:00:02', id: 'nic1' },
    ]);
  });

  it('v2 without set-name, MAC of a device here: named after that device (cloud-init looks it up)', function () {
    expect(out.lookup, 'a network device with a device link on this host to look up').to.not.equal(undefined);
    expect(out.lookup.r).to.deep.equal([{ name: out.lookup.dev, mac: out.lookup.mac.toLowerCase(), id: 'wan' }]);
  });

  it('no config, no interfaces; network_config returns the config with its interfaces', () => {
    expect(out.none).to.deep.equal([[], []]);
    expect(out.network_config.ok).to.equal(true);
    expect(out.network_config.interfaces).to.deep.equal([{ name: 'ens5', mac: '0a:00:00:00:00:01', id: 'eth0' }]);
    expect(out.network_config.network_config.version).to.equal(2);
  });

  it("the stack: cloud-init's renderer name and activator class for the distro", () => {
    expect(out.stack.renderer).to.be.oneOf(['eni', 'netplan', 'networkd', 'sysconfig']);
    expect(out.stack.activator).to.match(/^[A-Za-z]+Activator$/);
    if (existsSync('/sbin/ifup') && !existsSync('/usr/sbin/netplan')) expect(out.stack).to.deep.equal({ renderer: 'eni', activator: 'IfUpDownActivator' });
  });
});
