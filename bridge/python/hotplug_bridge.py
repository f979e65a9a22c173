"""Entry module of the Python bridge: the coarse, plain-data functions over upstream cloud-init
that TypeScript calls via pythonia (bridge/index.ts). The work is done by its sibling modules:
hb_state (state, errors), hb_files (obj.pkl guard, atomic writes), hb_runtime (cloud-init
repairs), hb_metadata (summary, EC2 metadata checks), hb_ports (ports of any datasource, OpenStack
family network config), hb_netdata (network_data.json checks and reads), hb_network (interfaces,
rendering, bring-up).

Every public function returns a JSON-able dict: {"ok": True, ...} or
{"ok": False, "kind": <error class>, "error": <one line>}. No Python object
crosses the bridge, so the TS side never holds proxies and never has to parse
a Python traceback for an expected failure.

Names avoid `apply`, `call` and `bind`: a pythonia proxy is a JS function, so
those names would resolve to Function.prototype methods.
"""

import json
import logging
import os
import pickle
import sys
import time

# pythonia inherits node's stdout; anything printed here must not reach our CLI's stdout.
sys.stdout = sys.stderr

# pythonia (and the tests) load this file by path: its siblings are importable only from here on.
_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

from cloudinit import log as ci_log  # noqa: E402
from cloudinit import sources, stages  # noqa: E402

import hb_ports  # noqa: E402
import hb_probe  # noqa: E402
import hb_memory  # noqa: E402
import hb_runtime  # noqa: E402
from hb_state import S, BridgeError, NoCache, RefreshFailed, UnsafeCache, require_open as _require_open  # noqa: E402,F401
from hb_files import _atomic_write, _check_target, _read_trusted_pickle, _safe_loads, _store_pickle_atomic  # noqa: E402,F401
from hb_metadata import _check_complete, _ec2_macs, _hotplug_state, _is_ec2, _network_config, _sanitize_nics, _summary, refresh_network_ec2, refresh_network_json  # noqa: E402
from hb_network import _brings_up_all_at_once, bring_up_all, net_interfaces, network_stack, render_preview  # noqa: E402,F401

# (_atomic_write and _brings_up_all_at_once are imported for the tests, which reach them here.)

LOG = logging.getLogger("cloud-hotplug.bridge")

hb_runtime.install()


# Calls after which memory is given back once the bridge is idle (hb_memory); not the cheap,
# frequent ones (the poller's probe, summaries).
_HEAVY = {"open_instance", "refresh", "store", "apply_network", "bring_down", "bring_up", "rederive", "refresh_network", "preview"}


def _result(fn):
    """Turn a function into a bridge entry point returning plain dicts."""

    def wrapper(*args, **kwargs):
        try:
            out = fn(*args, **kwargs) or {}
            out["ok"] = True
            return json.loads(json.dumps(out, default=str))
        except BridgeError as e:
            return {"ok": False, "kind": e.kind, "error": str(e)}
        except Exception as e:  # unexpected: keep the class name, one line
            LOG.exception("bridge call %s failed", fn.__name__)
            first = (str(e).strip().splitlines() or [""])[0]
            return {"ok": False, "kind": type(e).__name__, "error": first or type(e).__name__}
        finally:
            if fn.__name__ in _HEAVY:
                hb_memory.after_heavy_call()

    wrapper.__name__ = fn.__name__
    wrapper.__doc__ = fn.__doc__
    return wrapper


# ---------------------------------------------------------------- entry points


@_result
def open_instance(obj_pkl=None, setup_logging=True):
    """Load cloud-init's cached datasource the way `fetch(existing="trust")` does,
    after checking that obj.pkl is safe to unpickle."""
    with hb_runtime.base_config_read_once():
        return _open_instance(obj_pkl, setup_logging)


def _open_instance(obj_pkl, setup_logging):
    init = stages.Init(ds_deps=[])
    path = obj_pkl or init.paths.get_ipath_cur("obj_pkl")
    raw = _read_trusted_pickle(path)
    try:
        ds = _safe_loads(raw)
    except UnsafeCache:
        raise
    except Exception as e:
        raise NoCache("cannot load cached datasource %s: %s" % (path, e))
    if not isinstance(ds, sources.DataSource):
        raise UnsafeCache("refusing %s: it does not hold a cloud-init datasource" % path)
    if _is_ec2(ds):
        S.rejected = _sanitize_nics(_ec2_macs(getattr(ds, "metadata", None)), None)
    elif hb_ports.is_openstack_family(ds):
        ds.network_json, S.rejected = hb_ports.sanitize_network_json(getattr(ds, "network_json", None))
    init.datasource = ds
    init._reset()
    init.read_cfg()
    if setup_logging and not S.logging_ready:
        # cloud-init's own log file gets the datasource's messages, as with its hook.
        try:
            ci_log.setupLogging(init.cfg)
        except Exception:
            pass
        # setupLogging's logging.config.fileConfig disables every existing logger it does not
        # name (disable_existing_loggers): ours too, which silently dropped the bridge's own lines.
        LOG.disabled = False
        # cloud-init.log keeps everything; its console handler would put cloud-init's warnings
        # on our stderr, where an expected failure must be one line.
        root = logging.getLogger()
        for h in list(root.handlers):
            if type(h) is logging.StreamHandler and getattr(h, "stream", None) in (sys.stderr, sys.__stderr__, sys.stdout, sys.__stdout__):
                root.removeHandler(h)
        S.logging_ready = True
    S.init, S.ds, S.obj_pkl = init, ds, path
    hb_probe.reset()
    # cloud-init's own choice of renderer and activator: a few `which` lookups, so every open reports it.
    return {"obj_pkl": path, "summary": _summary(init, ds), "stack": network_stack(ds.distro)}


@_result
def summary():
    _require_open()
    return {"summary": _summary(S.init, S.ds)}


@_result
def hotplug_state():
    _require_open()
    return _hotplug_state(S.init, S.ds)


@_result
def network_config():
    _require_open()
    cfg = _network_config(S.init)
    return {"network_config": cfg, "interfaces": net_interfaces(cfg)}


@_result
def refresh(timeout=2, max_wait=10, retries=0):
    """Re-crawl the datasource in memory. Nothing is written: store() does that.

    At hotplug time the network is up, so a cached DataSourceEc2Local must not
    re-run ephemeral DHCP (on Debian 12 that fails: iproute2 6.1 says "Address
    already assigned" where cloud-init 22.4 tolerates only "File exists").
    On failure the in-memory datasource is restored to its previous state."""
    _require_open()
    ds = S.ds
    before = pickle.dumps(ds)
    try:
        before_id = ds.get_instance_id()
    except Exception:
        before_id = None
    old_macs = _ec2_macs(getattr(ds, "metadata", None))
    old_nj = getattr(ds, "network_json", None)
    old_rejected = S.rejected
    had_dhcp_attr = "perform_dhcp_setup" in ds.__dict__
    old_dhcp = ds.__dict__.get("perform_dhcp_setup")
    old_ds_cfg = ds.ds_cfg
    t0 = time.monotonic()
    ok = False
    try:
        ds.perform_dhcp_setup = False
        # Bound each attempt: the caller owns retries and the overall budget.
        ds.ds_cfg = dict(old_ds_cfg or {})
        ds.ds_cfg["timeout"] = timeout
        ds.ds_cfg["max_wait"] = max_wait
        ds.ds_cfg["retries"] = retries
        # What update_metadata_if_supported() does, minus its persist (which
        # rewrites obj.pkl in place): drop the cached network config and metadata.
        hb_ports.reset_network_config(ds)
        ds._dirty_cache = True
        ds.clear_cached_attrs()
        ds._dirty_cache = True
        with hb_runtime.metadata_crawl():
            got = ds._get_data()
        if not got:
            raise RefreshFailed(
                "metadata crawl of %s failed (metadata service unreachable or incomplete)" % type(ds).__name__
            )
        _check_complete(ds, before_id)
        if _is_ec2(ds):
            S.rejected = _sanitize_nics(_ec2_macs(ds.metadata), old_macs)
        elif hb_ports.is_openstack_family(ds):
            ds.network_json, S.rejected = hb_ports.sanitize_network_json(ds.network_json, old_nj)
            hb_ports.reset_network_config(ds)
        netcfg = _network_config(S.init)
        if netcfg is None:
            raise RefreshFailed("datasource returned no network config after refresh")
        summ = _summary(S.init, S.ds)
        # Only now is the new state accepted; any failure above restores the old one.
        ok = True
        hb_probe.forget()
    finally:
        ds.ds_cfg = old_ds_cfg
        if had_dhcp_attr:
            ds.perform_dhcp_setup = old_dhcp
        else:
            ds.__dict__.pop("perform_dhcp_setup", None)
        if not ok:
            S.rejected = old_rejected
            restored = pickle.loads(before)
            S.init.datasource = restored
            S.ds = restored
            S.init._reset()
            S.init.read_cfg()
    return {
        "duration_ms": int((time.monotonic() - t0) * 1000),
        "summary": summ,
        "network_config": netcfg,
        "interfaces": net_interfaces(netcfg),
    }


@_result
def store(network_config_json=None):
    """Persist the refreshed datasource: obj.pkl atomically, instance-data.json
    through cloud-init's own writer, and our network-config JSON atomically."""
    _require_open()
    ds = S.ds
    # Every target checked before anything is written: a refused one leaves all of them as they were.
    _check_target(S.obj_pkl)
    if network_config_json:
        _check_target(network_config_json)
    _store_pickle_atomic(ds, S.obj_pkl)
    if not ds.persist_instance_data(write_cache=False):
        raise BridgeError("cloud-init could not write instance-data.json")
    if network_config_json:
        text = json.dumps(_network_config(S.init), indent=2, sort_keys=True) + "\n"
        _atomic_write(network_config_json, text.encode(), 0o644)
    # The summary of what was stored: callers record it without another round trip.
    return {"obj_pkl": S.obj_pkl, "summary": _summary(S.init, ds)}


@_result
def preview(netcfg_json=None):
    """Render the config into a scratch root and return the files it would write
    (path, new content, current content). Changes nothing on the system."""
    _require_open()
    netcfg = json.loads(netcfg_json) if netcfg_json else _network_config(S.init)
    renderer, files = render_preview(S.ds.distro, netcfg)
    return {"renderer": renderer, "network_config": netcfg, "files": files, "interfaces": net_interfaces(netcfg)}


@_result
def apply_network(netcfg_json=None, bring_up=True):
    """distro.apply_network_config(netcfg, bring_up) — the distro's renderer writes
    the config and its activator brings interfaces up."""
    _require_open()
    netcfg = json.loads(netcfg_json) if netcfg_json else _network_config(S.init)
    if not netcfg:
        raise BridgeError("no network config to apply")
    t0 = time.monotonic()
    failed = S.ds.distro.apply_network_config(netcfg, bring_up=bring_up)
    return {
        "failed": bool(failed),
        "duration_ms": int((time.monotonic() - t0) * 1000),
        "interfaces": net_interfaces(netcfg),
    }


@_result
def bring_down(ifname):
    """The distro activator's bring_down_interface, for a removed NIC, while the
    rendered config still describes it."""
    _require_open()
    activator = S.ds.distro.network_activator
    if not activator:
        raise BridgeError("no network activator available")
    return {"done": bool(activator.bring_down_interface(ifname)), "activator": activator.__name__}


@_result
def cloud_config():
    """cloud-hotplug's own settings from cloud-init's merged config, read now: the `cloud_hotplug:`
    key of user-data / vendor-data (instance/cloud-config.txt, vendor-cloud-config.txt) over
    /etc/cloud/cloud.cfg(.d). A fresh Init, so the opened one (and its distro) is untouched."""
    _require_open()
    init = stages.Init(ds_deps=[])
    init.datasource = S.ds
    init.read_cfg()
    cfg = init.cfg or {}
    if "cloud_hotplug" not in cfg:
        return {"present": False, "config": None, "type": "absent"}
    v = cfg.get("cloud_hotplug")
    return {"present": True, "config": v if isinstance(v, dict) else None, "type": type(v).__name__}


@_result
def ping():
    return {"pid": os.getpid(), "python": sys.version.split()[0]}


_MAC_OK = __import__("re").compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")


@_result
def probe_macs(timeout=1.0):
    """Cheap check of which NIC MACs the metadata service lists right now: one
    request (plus a token PUT when needed) instead of a full crawl. Used to wait
    for metadata that lags behind an attach. Ec2 family only; other datasources
    answer supported=False and the caller falls back to full refreshes."""
    _require_open()
    from cloudinit import url_helper
    from cloudinit.sources.DataSourceEc2 import DataSourceEc2

    ds = S.ds
    if hb_ports.is_openstack_family(ds):
        try:
            return hb_ports.probe(ds, timeout)
        except RefreshFailed as e:
            raise BridgeError(str(e))
    if not isinstance(ds, DataSourceEc2) or not getattr(ds, "metadata_address", None):
        return {"supported": False, "macs": []}
    crawled = getattr(ds, "_crawled_metadata", None) or {}
    version = crawled.get("_metadata_api_version") or ds.min_metadata_version
    url = url_helper.combine_url(ds.metadata_address, version, "meta-data/network/interfaces/macs/")
    last = None
    for _ in range(2):  # second try after a stale-token 401
        try:
            resp = url_helper.readurl(url, headers_cb=ds._get_headers, timeout=timeout, retries=0)
            break
        except url_helper.UrlError as e:
            last = e
            if e.code == 401:
                ds._api_token = None
                continue
            raise BridgeError("metadata probe failed: %s" % (e.code or e.cause))
    else:
        raise BridgeError("metadata probe failed: %s" % last)
    macs, others = [], []
    for line in resp.contents.decode("utf-8", "replace").splitlines():
        m = line.strip().rstrip("/").lower()
        if _MAC_OK.match(m):
            macs.append(m)
        elif m and len(others) < 64:
            # An entry no device can match (its key is not a MAC): the caller crawls to learn
            # which NIC it was meant for instead of waiting for a MAC that never shows.
            others.append(m[:40])
    return {"supported": True, "macs": sorted(set(macs)), "others": sorted(set(others))}


@_result
def rederive():
    """Recompute the network config from the cached metadata without a crawl. The
    Ec2 datasource renders only NICs present on the system, so after a device is
    removed this drops it even while the metadata service still lists it."""
    _require_open()
    hb_ports.reset_network_config(S.ds)
    cfg = _network_config(S.init)
    return {"network_config": cfg, "summary": _summary(S.init, S.ds), "interfaces": net_interfaces(cfg)}


@_result
def bring_up(ifnames):
    """Bring up `ifnames` through the distro's activator; every name is tried and reported
    (cloud-init's bring_up_interfaces stops at the first failure). Per-interface activators
    run concurrently, at most hb_network._BRING_UP_WORKERS at a time; an all-at-once one (netplan)
    is called once. hb_network says why."""
    _require_open()
    activator = S.ds.distro.network_activator
    if not activator:
        raise BridgeError("no network activator available")
    names = list(dict.fromkeys(ifnames))  # once each, in order: two ifups of one NIC would only queue on its lock
    results, durations = bring_up_all(activator, names)
    return {"results": results, "activator": activator.__name__, "durations_ms": durations}


@_result
def refresh_network(timeout=2):
    """Re-read only the network metadata: meta-data/network/ of an Ec2-family datasource,
    network_data.json of the OpenStack family. What a NIC hotplug needs, at a fraction of a full
    crawl's requests; the datasource changes only when the whole of it was read; nothing is written."""
    _require_open()
    from cloudinit.sources.DataSourceEc2 import DataSourceEc2

    ds = S.ds
    if hb_ports.is_openstack_family(ds):
        return refresh_network_json(ds, timeout)
    if not isinstance(ds, DataSourceEc2) or not getattr(ds, "metadata_address", None) or not isinstance(ds.metadata, dict):
        return {"supported": False}
    return refresh_network_ec2(ds, timeout)


@_result
def probe_network(timeout=1.0):
    """One small metadata read (hb_probe): whether the network metadata may have changed versus
    what the opened datasource holds; only then does the poller run refresh_network. Nothing of
    the datasource changes. supported=False where there is nothing cheap to read."""
    _require_open()
    from cloudinit.sources.DataSourceEc2 import DataSourceEc2

    ds = S.ds
    if hb_ports.is_openstack_family(ds):
        return hb_probe.probe_json(ds, timeout)
    macs = _ec2_macs(getattr(ds, "metadata", None))
    if not isinstance(ds, DataSourceEc2) or not getattr(ds, "metadata_address", None) or not isinstance(macs, dict) or not macs:
        return {"supported": False}
    return hb_probe.probe_ec2(ds, macs, timeout)


@_result
def set_sources(md_fallback=None):
    """Options of where metadata comes from: `md_fallback`, an OpenStack metadata service base
    URL a config drive (static since boot) falls back to for NICs hot-added later (opt-in)."""
    if md_fallback is not None and (not isinstance(md_fallback, str) or not __import__("re").match(r"^https?://[A-Za-z0-9.:\[\]-]{1,100}/?$", md_fallback)):
        raise BridgeError("metadata fallback %r is not an http(s) base URL" % (md_fallback,))
    S.md_fallback = md_fallback.rstrip("/") if md_fallback else None
    return {"md_fallback": S.md_fallback}
