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

/** load_bridge(): the real bridge module, loaded from its file (argv[1]) as pythonia does. */
const LOAD_BRIDGE = String.raw`
import http.server, importlib.util, json, os, sys, threading, time
def load_bridge():
    spec = importlib.util.spec_from_file_location("hotplug_bridge", sys.argv[1])
    hb = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hb)
    return hb
`;

/** An HTTP/1.1 (keep-alive) server on 127.0.0.1 recording (path, client port, IMDSv2 token) in
 * `seen`: /missing* answers 404, /slow* after 1.5 s, /close* closes the connection, others 200. */
const SERVER = String.raw`
seen = []
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as EC2's IMDS and the lab's
    def do_GET(self):
        seen.append((self.path, self.client_address[1], self.headers.get("X-aws-ec2-metadata-token")))
        if self.path.startswith("/slow"):
            time.sleep(1.5)
        code = 404 if self.path.startswith("/missing") else 200
        body = ("leaf %s" % self.path).encode()
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        if self.path.startswith("/close"):
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)
        if self.path.startswith("/close"):
            self.close_connection = True
    def log_message(self, *a):
        pass
srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
threading.Thread(target=srv.serve_forever, daemon=True).start()
base = "http://127.0.0.1:%d" % srv.server_address[1]
`;

/** Runs LOAD_BRIDGE + `script` under /usr/bin/python3 (cloud-init's); its stdout is JSON. `clean`:
 * an environment with no proxy, CA bundle or netrc for requests to apply. */
async function runBridgePy(script: string, clean = false): Promise<any> {
  const env = clean ? { env: { PATH: '/usr/bin:/bin', HOME: '/nonexistent' }, extendEnv: false } : {};
  const r = await execa('/usr/bin/python3', ['-c', LOAD_BRIDGE + script, BRIDGE_PY], { reject: false, ...env });
  expect(r.exitCode, r.stderr).to.equal(0);
  return JSON.parse(r.stdout);
}

const SCRIPT = String.raw`
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

hb = load_bridge()
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
    out = await runBridgePy(SCRIPT);
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

const CRAWL_SCRIPT = SERVER + String.raw`
url = base + "/latest/meta-data/"
hb = load_bridge()
import hb_runtime
from cloudinit import url_helper

out = {}
def conns(n):
    del seen[:]
    for i in range(n):
        url_helper.read_file_or_url(url + str(i), timeout=2)
    return len(set(p for _, p, _ in seen)), len(seen)
out["outside"] = conns(6)
with hb_runtime.metadata_crawl():
    s = hb_runtime._CRAWL.session
    out["inside"] = conns(6)
    with hb_runtime.metadata_crawl():  # nested: the same session
        out["nested_same"] = hb_runtime._CRAWL.session is s
out["after"] = getattr(hb_runtime._CRAWL, "session", None) is None
out["closed"] = len(s.adapters) == 0 or all(not a.poolmanager.pools for a in s.adapters.values())
out["trust_env_clean"] = hb_runtime._crawl_session().trust_env
os.environ["http_proxy"] = "http://proxy.invalid:3128"
out["trust_env_proxy"] = hb_runtime._crawl_session().trust_env
srv.shutdown()
sys.__stdout__.write(json.dumps(out))
`;

describe('bridge: a metadata crawl shares one keep-alive connection (real cloud-init url_helper)', function () {
  this.timeout(60_000);
  let out: any;
  before(async function () {
    out = await runBridgePy(CRAWL_SCRIPT, true);
  });

  it("outside a crawl, cloud-init's readurl opens a connection per request", function () {
    expect(out.outside).to.deep.equal([6, 6]);
  });

  it('inside metadata_crawl() the same requests use one connection, nested blocks the same session', function () {
    expect(out.inside).to.deep.equal([1, 6]);
    expect(out.nested_same).to.equal(true);
  });

  it('the session is closed and dropped when the crawl ends', function () {
    expect(out.after).to.equal(true);
    expect(out.closed).to.equal(true);
  });

  it('the environment is skipped only when it holds nothing for requests (a proxy variable keeps it)', function () {
    expect(out.trust_env_clean).to.equal(false);
    expect(out.trust_env_proxy).to.equal(true);
  });
});

const KEEPALIVE_SCRIPT = SERVER + String.raw`
hb = load_bridge()
import hb_runtime
from cloudinit import url_helper

def error_of(f):
    try:
        f()
        return None
    except url_helper.UrlError as e:
        return [type(e).__name__, e.code]

out = {}
plain = [url_helper.read_file_or_url(base + "/ok/%d" % i, timeout=2).contents.decode() for i in range(5)]
outside_404 = error_of(lambda: url_helper.read_file_or_url(base + "/missing", timeout=2, retries=0))
del seen[:]
with hb_runtime.metadata_crawl():
    conn = hb_runtime._CRAWL.conn
    r = [url_helper.read_file_or_url(base + "/ok/%d" % i, timeout=2) for i in range(5)]
    out["same_bytes"] = [x.contents.decode() for x in r] == plain
    out["response"] = [type(r[0]).__name__, r[0].code, r[0].ok(), str(r[0]), r[0].headers.get("content-length")]
    out["one_connection"] = len(set(p for _, p, _ in seen))
    out["served"] = conn.served
    tok = url_helper.read_file_or_url(base + "/ok/tok", timeout=2, headers_cb=lambda url: {"X-aws-ec2-metadata-token": "T-" + url[-3:]})
    out["token_sent"] = seen[-1][2]
    del seen[:]
    out["crawl_404"] = error_of(lambda: url_helper.read_file_or_url(base + "/missing", timeout=2, retries=0))
    out["requests_for_404"] = len(seen)  # ours, then cloud-init's readurl for its error
    del seen[:]
    closed = [url_helper.read_file_or_url(base + "/close/%d" % i, timeout=2).contents.decode() for i in range(3)]
    out["after_close"] = [closed == ["leaf /close/%d" % i for i in range(3)], len(set(p for _, p, _ in seen))]
    out["broken_before_timeout"] = conn.broken
    del seen[:]
    t = time.monotonic()
    err = error_of(lambda: url_helper.read_file_or_url(base + "/slow", timeout=1, retries=1))
    out["timeout"] = [err, len(seen), conn.broken, round(time.monotonic() - t)]
    del seen[:]
    url_helper.read_file_or_url(base + "/ok/after", timeout=2)
    out["after_timeout_served"] = conn.served
out["outside_404"] = outside_404
os.environ["http_proxy"] = "http://proxy.invalid:3128"
with hb_runtime.metadata_crawl():
    out["proxy_conn"] = hb_runtime._CRAWL.conn is None
srv.shutdown()
sys.__stdout__.write(json.dumps(out))
`;

describe("bridge: a crawl's plain GETs skip requests on one raw keep-alive connection (hb_keepalive)", function () {
  this.timeout(60_000);
  let out: any;
  before(async function () {
    out = await runBridgePy(KEEPALIVE_SCRIPT, true);
  });

  it("answers with cloud-init's own UrlResponse holding the same bytes, all on one connection", function () {
    expect(out.same_bytes).to.equal(true);
    expect(out.response).to.deep.equal(['UrlResponse', 200, true, 'leaf /ok/0', '10']);
    expect(out.one_connection).to.equal(1);
    expect(out.served).to.equal(5);
  });

  it("sends the headers of headers_cb (the datasource's IMDSv2 token)", function () {
    expect(out.token_sent).to.equal('T-tok');
  });

  it("leaves anything but a 200 to cloud-init's readurl: the same UrlError as outside a crawl", function () {
    expect(out.crawl_404).to.deep.equal(out.outside_404);
    expect(out.crawl_404).to.deep.equal(['UrlError', 404]);
    expect(out.requests_for_404).to.equal(2);
  });

  it('reconnects when the server closes the connection', function () {
    expect(out.after_close).to.deep.equal([true, 3]);
    expect(out.broken_before_timeout).to.equal(false);
  });

  it("after a timeout, cloud-init's readurl gets one try fewer, and the crawl stays off the fast path", function () {
    // ours timed out (1 s), then cloud-init's one remaining try (1 s), not two more (+1 s between)
    expect(out.timeout).to.deep.equal([['UrlError', null], 2, true, 2]);
    expect(out.after_timeout_served).to.equal(9);
  });

  it('is off when a proxy variable is set (requests would apply it)', function () {
    expect(out.proxy_conn).to.equal(true);
  });
});

const BASE_CFG_SCRIPT = String.raw`
hb = load_bridge()
import hb_runtime
from cloudinit import stages, util
reads = []
orig = util.read_conf_with_confd
def counting(*a, **k):
    reads.append(1)
    return orig(*a, **k)
util.read_conf_with_confd = counting

def open_like():  # what open_instance does with Init: paths first, then the config again
    init = stages.Init(ds_deps=[])
    init.paths
    init._reset()
    init.read_cfg()
    return init.cfg

out = {}
plain = open_like()
out["reads_plain"] = len(reads)
del reads[:]
with hb_runtime.base_config_read_once():
    once = open_like()
    out["reads_once"] = len(reads)
    once["mutated"] = True  # a caller's copy: the next read in the block does not see it
    out["copy"] = "mutated" not in open_like() and len(reads) == 1
out["same"] = {k: v for k, v in once.items() if k != "mutated"} == plain
out["restored"] = stages.fetch_base_config.__name__ == "fetch_base_config" and stages.fetch_base_config.__module__ == "cloudinit.stages"
sys.__stdout__.write(json.dumps(out))
`;

describe("bridge: opening an instance reads cloud-init's base config once (real cloud-init, /etc/cloud)", function () {
  this.timeout(60_000);
  let out: any;
  before(async function () {
    out = await runBridgePy(BASE_CFG_SCRIPT);
  });

  it('Init reads and parses the config files twice on its own, once inside base_config_read_once()', function () {
    expect(out.reads_plain).to.equal(2);
    expect(out.reads_once).to.equal(1);
  });

  it('to the same config, each caller with a copy of its own; the original function comes back after', function () {
    expect(out.same).to.equal(true);
    expect(out.copy).to.equal(true);
    expect(out.restored).to.equal(true);
  });
});
