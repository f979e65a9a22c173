/**
 * The metadata poller's cheap change probe: its pure TS parts (interval, verdicts, the request
 * count), the poller's handling of probe replies over a fake bridge, and the bridge's probe
 * (hb_probe.py) under the real /usr/bin/python3 and cloud-init's url_helper against a local HTTP
 * server standing in for the IMDS (schedule, absent leaves, ETag / 304, a stale token's 401).
 */
import { expect } from 'chai';
import { execa } from 'execa';
import { BRIDGE_PY, type Bridge, type Reply } from '../bridge/index.js';
import { defaultConfig } from '../src/config.js';
import type { PipelineDeps } from '../src/pipeline/deps.js';
import { MetadataPoller } from '../src/daemon/poller.js';
import { maxProbesPerMinute, nextPollMs, probeVerdict, probing, RequestWindow, PROBE_JITTER } from '../src/daemon/probe.js';
import { FakeCloud, fakeAccess, fakes } from './helpers/fake-pipeline.js';
import { fingerprint } from '../src/daemon/fingerprint.js';

describe('poller probe: interval and verdicts', () => {
  const cfg = { probe_interval_seconds: 2.5, poll_interval_seconds: 10 };

  it('probes at the probe interval ±10 % while it may; full re-reads at poll_interval_seconds ±20 % without a probe', () => {
    expect(probing(cfg, null)).to.equal(true);
    expect(probing(cfg, true)).to.equal(true);
    expect(probing(cfg, false)).to.equal(false);
    expect(probing({ ...cfg, probe_interval_seconds: 0 }, true)).to.equal(false);
    expect(nextPollMs(cfg, true, 0, () => 0)).to.equal(2250);
    expect(nextPollMs(cfg, true, 0, () => 1)).to.equal(2750);
    expect(nextPollMs(cfg, false, 0, () => 0)).to.equal(8000);
    expect(nextPollMs({ ...cfg, probe_interval_seconds: 0 }, null, 0, () => 1)).to.equal(12000);
    // A failing probe backs off like the full poll (util/backoff.ts, from twice the interval), never sooner than the interval.
    expect(nextPollMs(cfg, true, 2, () => 0.5)).to.equal(5000);
    expect(nextPollMs(cfg, true, 3, () => 0)).to.equal(2500);
    expect(nextPollMs(cfg, true, 40, () => 1)).to.equal(300_000);
  });

  it('the default interval keeps the busiest idle minute within 30 requests, whatever the NIC count (one request per probe)', () => {
    expect(defaultConfig.daemon.probe_interval_seconds).to.be.greaterThan(0);
    expect(maxProbesPerMinute(defaultConfig.daemon.probe_interval_seconds)).to.be.at.most(30);
    expect(maxProbesPerMinute(1)).to.equal(Math.floor(60 / (1 - PROBE_JITTER)) + 1);
    expect(maxProbesPerMinute(0)).to.equal(0);
  });

  it('verdicts: unchanged, changed, unsupported', () => {
    const r = (changed: boolean): Reply<'probe_network'> => ({ supported: true, changed, resource: 'x', requests: 1, not_modified: false, targets: 3 });
    expect(probeVerdict(r(false))).to.equal('unchanged');
    expect(probeVerdict(r(true))).to.equal('changed');
    expect(probeVerdict({ supported: false })).to.equal('unsupported');
  });

  it('requests over the last minute: older ones drop out, the total stays', () => {
    const w = new RequestWindow();
    w.add(1, 1_000);
    w.add(2, 30_000);
    w.add(0, 31_000);
    expect(w.lastMinute(59_000)).to.equal(3);
    expect(w.lastMinute(61_000)).to.equal(2);
    expect(w.lastMinute(91_000)).to.equal(0);
    expect(w.total).to.equal(3);
  });
});

describe('poller: probe replies', () => {
  function setup(replies: Reply<'probe_network'>[]) {
    const cloud = new FakeCloud().list('eth0', 1, 0);
    const access = fakeAccess(cloud);
    const base = cloud.bridge.bind(cloud);
    const probes: string[] = [];
    cloud.bridge = () => {
      const b = base();
      (b as Bridge).probeNetwork = async () => {
        probes.push('probe');
        return replies.shift() ?? { supported: true, changed: false, resource: 'x', requests: 1, not_modified: false, targets: 1 };
      };
      return b;
    };
    const deps = { bridge: access, bootFinished: () => true, config: () => defaultConfig } as unknown as PipelineDeps;
    const poller = new MetadataPoller({ deps, exclusive: (fn) => fn(), stopping: () => true, schedule: () => {}, queued: async () => false, drain: () => {}, emit: () => {} });
    poller.accept(cloud.summary());
    const refreshes = () => cloud.calls.filter((c) => c === 'refreshNetwork').length;
    return { poller, probes, refreshes };
  }
  const yes = (changed: boolean, requests = 1): Reply<'probe_network'> => ({ supported: true, changed, resource: 'meta-data/network/interfaces/macs/x/local-ipv4s', requests, not_modified: false, targets: 3 });

  it('an unchanged probe re-reads nothing; a changed one re-reads the network metadata once', async () => {
    const { poller, probes, refreshes } = setup([yes(false), yes(false, 2), yes(true)]);
    await poller.pollOnce();
    await poller.pollOnce();
    expect([probes.length, refreshes()]).to.deep.equal([2, 0]);
    await poller.pollOnce();
    expect([probes.length, refreshes()]).to.deep.equal([3, 1]);
    expect(poller.probe).to.include({ supported: true, probes: 3, changed: 1 });
    expect(poller.probe.requests.total).to.equal(4);
    expect(poller.stats.refreshes).to.equal(1);
  });

  it('a datasource without a probe: a full re-read now and at every poll from then on, no more probes', async () => {
    const { poller, probes, refreshes } = setup([{ supported: false }]);
    await poller.pollOnce();
    await poller.pollOnce();
    expect([probes.length, refreshes()]).to.deep.equal([1, 2]);
    expect(poller.probe.supported).to.equal(false);
    expect(poller.probing()).to.equal(false);
    // New metadata accepted (after an event): the probe is asked again.
    poller.accept(poller.summary!);
    await poller.pollOnce();
    expect([probes.length, refreshes()]).to.deep.equal([2, 2]);
    expect(poller.probe.supported).to.equal(true);
  });

  it('without a baseline yet the first poll re-reads (no probe): what it finds is the baseline', async () => {
    const { poller, probes, refreshes } = setup([]);
    poller.baseline = undefined;
    await poller.pollOnce();
    expect([probes.length, refreshes()]).to.deep.equal([0, 1]);
    expect(poller.baseline).to.be.a('string');
  });
});

describe('poller: a metadata change whose handling failed', () => {
  it('is retried by full re-reads (the probe compares with what the bridge now holds, so it would not report the change again), backing off, until handled; then probes again', async () => {
    const f = fakes();
    f.cloud.list('eth0', 0);
    f.links.add('eth0');
    const probes: string[] = [];
    const base = f.cloud.bridge.bind(f.cloud);
    // Like hb_probe: "changed" only while the metadata differs from what the bridge last read.
    let held = JSON.stringify(f.cloud.summary());
    f.cloud.bridge = () => {
      const b = base();
      const read = b.refreshNetwork.bind(b);
      b.refreshNetwork = async (t) => {
        const r = await read(t);
        held = JSON.stringify(r.supported ? r.summary : null);
        return r;
      };
      b.probeNetwork = async () => (probes.push('probe'), { supported: true, changed: JSON.stringify(f.cloud.summary()) !== held, resource: 'x', requests: 1, not_modified: false, targets: 1 });
      return b;
    };
    let failures = 1;
    const reconcile = f.routing.reconcile;
    f.routing.reconcile = async (s, complete) => (failures-- > 0 ? { changes: 0, failed: 1 } : reconcile(s, complete));
    const out: string[] = [];
    const poller = new MetadataPoller({ deps: f.deps, exclusive: (fn) => fn(), stopping: () => true, schedule: () => {}, queued: async () => false, drain: () => {}, emit: (r) => out.push(r.result) });
    poller.accept(f.cloud.summary());
    const refreshes = () => f.cloud.calls.filter((c) => c === 'refreshNetwork').length;

    f.cloud.list('eth1', 1); // a NIC appears in metadata with no device event here
    await poller.pollOnce(); // probe: changed → re-read → routing fails
    expect([probes.length, out]).to.deep.equal([1, ['failed']]);
    expect(poller.stats.failedChanges).to.equal(1);
    const r1 = refreshes();
    expect(r1).to.be.greaterThan(0);
    // The probe alone would now say "unchanged" (the bridge holds the new metadata): no probe, a re-read.
    await poller.pollOnce();
    expect([probes.length, out]).to.deep.equal([1, ['failed', 'applied']]);
    expect(refreshes()).to.be.greaterThan(r1);
    expect(poller.stats.failedChanges).to.equal(0);
    expect(poller.baseline).to.equal(fingerprint(f.cloud.summary()));
    const r2 = refreshes();
    await poller.pollOnce(); // handled: back to probing, and it sees nothing
    expect([probes.length, refreshes(), out.length]).to.deep.equal([2, r2, 2]);
  });
});

// The bridge's probe over cloud-init's url_helper, against an HTTP server in the same Python.
const PY = String.raw`
import importlib.util, json, sys, threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
spec = importlib.util.spec_from_file_location("hotplug_bridge", sys.argv[1])
hb = importlib.util.module_from_spec(spec)
spec.loader.exec_module(hb)
import hb_probe

A, B = "0a:00:00:00:00:01", "0a:00:00:00:00:02"
served = {  # path under /2021-03-23/meta-data/network/interfaces/macs/ -> (body, etag)
    "": (A + "/\n" + B + "/", None),
    A + "/local-ipv4s": ("10.0.1.10", '"e1"'),
    B + "/local-ipv4s": ("10.0.2.20\n10.0.2.21", None),
    B + "/ipv4-prefix": ("10.0.9.0/28", None),
}
log = []
state = {"token": "t1", "expire": False}

class H(BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass
    def do_PUT(self):
        log.append("PUT")
        state["token"] = "t2"
        self.send_response(200); self.end_headers(); self.wfile.write(b"t2")
    def do_GET(self):
        rel = self.path.split("/interfaces/macs/", 1)[1]
        log.append("GET " + rel + (" inm=" + self.headers["If-None-Match"] if self.headers.get("If-None-Match") else ""))
        if self.headers.get("X-aws-ec2-metadata-token") != state["token"] or state["expire"]:
            state["expire"] = False
            self.send_response(401); self.end_headers(); return
        if rel not in served:
            self.send_response(404); self.end_headers(); return
        body, etag = served[rel]
        if etag and self.headers.get("If-None-Match") == etag:
            self.send_response(304); self.end_headers(); return
        self.send_response(200)
        if etag:
            self.send_header("ETag", etag)
        self.end_headers(); self.wfile.write(body.encode())

srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
threading.Thread(target=srv.serve_forever, daemon=True).start()

class DS:
    metadata_address = "http://127.0.0.1:%d" % srv.server_address[1]
    min_metadata_version = "2021-03-23"
    _crawled_metadata = {}
    _api_token = "t1"
    def _get_headers(self, url=""):
        if not self._api_token:
            from cloudinit import url_helper
            url_helper.readurl(self.metadata_address + "/latest/api/token", request_method="PUT", timeout=1)
            self._api_token = "t2"
        return {"X-aws-ec2-metadata-token": self._api_token}

ds = DS()
macs = {A: {"local-ipv4s": "10.0.1.10"}, B: {"local-ipv4s": ["10.0.2.20", "10.0.2.21"], "ipv4-prefix": "10.0.9.0/28"}}
out = {"targets": [list(x) for part in hb_probe.targets(macs) for x in part]}
def probe():
    r = hb_probe.probe_ec2(ds, macs, 2)
    return [r["resource"].rsplit("macs/", 1)[1], r["changed"], r["requests"], r["not_modified"]]
out["cycle"] = [probe() for _ in range(14)]  # nothing changed: two rounds of hot leaves, each with its cold one
served[A + "/local-ipv4s"] = ("10.0.1.10\n10.0.1.11", '"e2"')
out["changed"] = [probe() for _ in range(5)][0]  # A's list again: changed, and seen as changed until re-read
hb_probe.reset()
out["before_reread"] = probe()
hb_probe.reset()
hb_probe.remember_ec2({A: {"local-ipv4s": "10.0.1.10\n10.0.1.11"}, B: macs[B]})
out["after_reread"] = probe()
state["expire"] = True
out["stale_token"] = probe()
out["log"] = log
sys.__stdout__.write(json.dumps(out) + "\n")
`;

describe('bridge probe (hb_probe.py, real cloud-init url_helper, a local HTTP server as the IMDS)', function () {
  this.timeout(60_000);
  let out: any;
  before(async () => {
    const r = await execa('/usr/bin/python3', ['-c', PY, BRIDGE_PY], { reject: false });
    if (r.exitCode !== 0) throw new Error(r.stderr.split('\n').slice(-5).join('\n'));
    out = JSON.parse(r.stdout.trim().split('\n').pop()!);
  });
  const A = '0a:00:00:00:00:01';
  const B = '0a:00:00:00:00:02';

  it('targets: every NIC\'s local-ipv4s hot; the MAC list, every ipv6s and only the prefixes a NIC has cold', () => {
    expect(out.targets).to.deep.equal([
      [A, 'local-ipv4s'],
      [B, 'local-ipv4s'],
      [null, 'macs'],
      [A, 'ipv6s'],
      [B, 'ipv6s'],
      [B, 'ipv4-prefix'],
    ]);
  });

  it('one request per probe; six hot leaves, then one cold one; an absent leaf (404) matches an absent one; nothing changed → nothing changed', () => {
    const hot = [`${A}/local-ipv4s`, `${B}/local-ipv4s`, `${A}/local-ipv4s`, `${B}/local-ipv4s`, `${A}/local-ipv4s`, `${B}/local-ipv4s`];
    expect(out.cycle.map((c: any[]) => c[0])).to.deep.equal([...hot, '', ...hot, `${A}/ipv6s`]);
    expect(out.cycle.every((c: any[]) => c[1] === false && c[2] === 1)).to.equal(true);
    // The ETag of an unchanged answer is sent back; the server's 304 is "not modified".
    expect(out.log).to.include(`GET ${A}/local-ipv4s inm="e1"`);
    expect(out.cycle.filter((c: any[]) => c[3]).length).to.be.greaterThan(0);
  });

  it('a changed leaf is "changed" (its new ETag is not kept), and stays so until a re-read is accepted; after it, unchanged', () => {
    expect(out.changed).to.deep.equal([`${A}/local-ipv4s`, true, 1, false]);
    expect(out.before_reread.slice(0, 2)).to.deep.equal([`${A}/local-ipv4s`, true]);
    expect(out.after_reread.slice(0, 2)).to.deep.equal([`${A}/local-ipv4s`, false]);
  });

  it('a stale token (401): the token is fetched again (a PUT) and the read retried; every request counted', () => {
    expect(out.stale_token.slice(1)).to.deep.equal([false, 3, false]);
    expect(out.log.slice(-3)).to.deep.equal([`GET ${B}/local-ipv4s`, 'PUT', `GET ${B}/local-ipv4s`]);
  });
});
