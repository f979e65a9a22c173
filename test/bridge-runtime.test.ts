/**
 * The bridge's process-wide repairs of cloud-init 22.4 (bridge/python/hb_runtime.py) that can be
 * checked without an instance: parsing a network config of many NICs makes no YAML dump of the
 * network state unless something reads it as text, and that text is the same as cloud-init's.
 * Runs the real bridge module under /usr/bin/python3 (cloud-init's interpreter).
 */
import { expect } from 'chai';
import { execa } from 'execa';
import { existsSync } from 'node:fs';
import { BRIDGE_PY } from '../bridge/index.js';

const SCRIPT = String.raw`
import importlib.util, json, sys
from cloudinit import safeyaml
from cloudinit.net import network_state

cfg = {"version": 2, "ethernets": {"nic%d" % i: {"match": {"macaddress": "0a:00:00:00:00:%02x" % i}, "set-name": "eth%d" % i, "dhcp4": True} for i in range(16)}}
dumps = []
orig = safeyaml.dumps
def counting(obj, *a, **k):
    dumps.append(1)
    return orig(obj, *a, **k)
safeyaml.dumps = counting

out = {}
network_state.parse_net_config_data(cfg)
out["dumps_before"] = len(dumps)

spec = importlib.util.spec_from_file_location("hotplug_bridge", sys.argv[1])
hb = importlib.util.module_from_spec(spec)
spec.loader.exec_module(hb)
import hb_runtime
hb_runtime.install()  # a second install changes nothing

del dumps[:]
ns = network_state.parse_net_config_data(cfg)
out["dumps_after"] = len(dumps)
out["interfaces"] = sorted(ns._network_state["interfaces"])
nsi = network_state.NetworkStateInterpreter(version=2, config=cfg)
nsi.parse_config()
del dumps[:]
out["text_same"] = str(nsi.dump_network_state()) == orig(nsi._network_state)
out["dumps_for_text"] = len(dumps)
sys.__stdout__.write(json.dumps(out))
`;

describe("bridge: cloud-init 22.4 repairs (real cloud-init, no instance)", function () {
  this.timeout(60_000);
  let out: any;
  before(async function () {
    expect(existsSync('/usr/bin/python3'), '/usr/bin/python3 with cloud-init (scripts/setup.sh installs it)').to.equal(true);
    const r = await execa('/usr/bin/python3', ['-c', SCRIPT, BRIDGE_PY], { reject: false });
    expect(r.exitCode, r.stderr).to.equal(0);
    out = JSON.parse(r.stdout);
  });

  it("unpatched cloud-init dumps the whole network state as YAML once per NIC it parses", function () {
    expect(out.dumps_before).to.equal(16);
  });

  it('with the bridge loaded, parsing the same 16 NICs makes no dump, and parses them all', function () {
    expect(out.dumps_after).to.equal(0);
    expect(out.interfaces).to.have.length(16);
  });

  it("the state's text, when asked for (cloud-init's debug log), is cloud-init's own dump", function () {
    expect(out.text_same).to.equal(true);
    expect(out.dumps_for_text).to.equal(1);
  });
});
