/**
 * The bridge's bring_up over cloud-init 22.4's real activator classes, with their one
 * subprocess helper (activators._alter_interface) replaced by a recorder: per-interface
 * activators (ifupdown, NetworkManager, networkd) bring interfaces up concurrently in a bounded
 * pool and report every name; netplan, whose every bring-up is `netplan apply` of everything,
 * runs once. Outcomes only, no timings.
 */
import { expect } from 'chai';
import { execa } from 'execa';
import { BRIDGE_PY } from '../bridge/index.js';

const SCRIPT = String.raw`
import importlib.util, json, sys, threading
spec = importlib.util.spec_from_file_location("hotplug_bridge", sys.argv[1])
hb = importlib.util.module_from_spec(spec)
spec.loader.exec_module(hb)
from cloudinit.net import activators as A

class Distro: network_activator = None
class DS: distro = Distro()
hb.S.init, hb.S.ds = object(), DS()

out = {"all_at_once": {c.__name__: hb._brings_up_all_at_once(c) for c in
       (A.IfUpDownActivator, A.NetworkManagerActivator, A.NetworkdActivator, A.NetplanActivator)}}

def run(activator, names, alter):
    Distro.network_activator = activator
    calls, lock = [], threading.Lock()
    state = {"now": 0, "max": 0}
    def recorder(cmd, device):
        with lock:
            calls.append(cmd)
            state["now"] += 1
            state["max"] = max(state["max"], state["now"])
        try:
            return alter(cmd, device)
        finally:
            with lock:
                state["now"] -= 1
    A._alter_interface = recorder
    r = hb.bring_up(names)
    return {"r": r, "calls": calls, "max_in_flight": state["max"]}

# ifupdown, 16 NICs: every ifup waits at a barrier of 8, so they only pass if 8 run at once.
barrier = threading.Barrier(8, timeout=30)
def ifup(cmd, device):
    barrier.wait()
    if device == "eth5":
        raise RuntimeError("boom")
    return device != "eth9"
names = ["eth%d" % i for i in range(1, 17)]
out["eni"] = run(A.IfUpDownActivator, names + ["eth1"], ifup)

# networkd, 3 NICs at once (a barrier of 3), NetworkManager: two nmcli commands per NIC.
b3 = threading.Barrier(3, timeout=30)
out["networkd"] = run(A.NetworkdActivator, ["eth1", "eth2", "eth3"], lambda c, d: b3.wait() is not None)
out["nm"] = run(A.NetworkManagerActivator, ["eth1", "eth2"], lambda c, d: True)

# netplan: one 'netplan apply' for all, its result reported for each name.
out["netplan"] = run(A.NetplanActivator, ["eth1", "eth2", "eth3"], lambda c, d: True)
out["netplan_failed"] = run(A.NetplanActivator, ["eth1", "eth2"], lambda c, d: False)
out["one"] = run(A.IfUpDownActivator, ["eth7"], lambda c, d: True)
out["none"] = run(A.IfUpDownActivator, [], lambda c, d: True)
sys.__stdout__.write(json.dumps(out))
`;

describe('bridge: bring_up of many interfaces (real cloud-init activators, recorded commands)', function () {
  this.timeout(60_000);
  let out: any;
  before(async () => {
    const r = await execa('/usr/bin/python3', ['-c', SCRIPT, BRIDGE_PY], { reject: false });
    expect(r.exitCode, r.stderr).to.equal(0);
    out = JSON.parse(r.stdout);
  });

  it("only netplan's activator is called once for all interfaces", () => {
    expect(out.all_at_once).to.deep.equal({
      IfUpDownActivator: false,
      NetworkManagerActivator: false,
      NetworkdActivator: false,
      NetplanActivator: true,
    });
  });

  it('ifupdown: 16 NICs → one ifup each, 8 at a time, every name reported; failures do not hide the others', () => {
    const { r, calls, max_in_flight } = out.eni;
    expect(r.ok).to.equal(true);
    expect(r.activator).to.equal('IfUpDownActivator');
    expect(calls.map((c: string[]) => c.join(' ')).sort()).to.deep.equal(
      Array.from({ length: 16 }, (_, i) => `ifup eth${i + 1}`).sort(),
    );
    // Every ifup passed a barrier of 8: eight ran at once, and the pool never ran more.
    expect(max_in_flight).to.equal(8);
    expect(Object.keys(r.results)).to.deep.equal(Array.from({ length: 16 }, (_, i) => `eth${i + 1}`));
    for (const [n, ok] of Object.entries(r.results)) expect(ok, n).to.equal(n !== 'eth5' && n !== 'eth9');
    expect(Object.keys(r.durations_ms)).to.have.length(16);
  });

  it('networkd and NetworkManager: per interface, concurrently, all reported', () => {
    expect(out.networkd.r.results).to.deep.equal({ eth1: true, eth2: true, eth3: true });
    expect(out.networkd.calls.map((c: string[]) => c.join(' ')).sort()).to.deep.equal(['ip link set up eth1', 'ip link set up eth2', 'ip link set up eth3']);
    expect(out.networkd.max_in_flight).to.equal(3);
    expect(out.nm.r.results).to.deep.equal({ eth1: true, eth2: true });
    expect(out.nm.calls.filter((c: string[]) => c[0] === 'nmcli' && c[2] === 'up')).to.have.length(2);
  });

  it("netplan: one 'netplan apply' for all names, its result reported for each", () => {
    expect(out.netplan.calls).to.deep.equal([['netplan', 'apply']]);
    expect(out.netplan.r.results).to.deep.equal({ eth1: true, eth2: true, eth3: true });
    expect(out.netplan.r.activator).to.equal('NetplanActivator');
    expect(out.netplan_failed.calls).to.deep.equal([['netplan', 'apply']]);
    expect(out.netplan_failed.r.results).to.deep.equal({ eth1: false, eth2: false });
  });

  it('one name and no names keep the same shape', () => {
    expect(out.one.r.results).to.deep.equal({ eth7: true });
    expect(out.one.calls).to.deep.equal([['ifup', 'eth7']]);
    expect(out.none.r.results).to.deep.equal({});
    expect(out.none.calls).to.deep.equal([]);
  });
});
