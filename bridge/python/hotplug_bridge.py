"""Coarse, plain-data functions over upstream cloud-init, called from TypeScript via pythonia.

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
import stat
import sys
import tempfile
import time

# pythonia inherits node's stdout; anything printed here must not reach our CLI's stdout.
sys.stdout = sys.stderr

from cloudinit import log as ci_log  # noqa: E402
from cloudinit import sources, stages  # noqa: E402
from cloudinit.event import EventScope, EventType  # noqa: E402
from cloudinit.net.network_state import parse_net_config_data  # noqa: E402

LOG = logging.getLogger("cloud-hotplug.bridge")

# cloud-init 22.4's wait_for_url shortens its last attempt's timeout with int(remaining) or None,
# and its token refresh calls readurl with no timeout at all: against a metadata service that
# accepts and never answers, one request then blocks forever. Every request gets a bound.
_URL_TIMEOUT_S = 5.0


def _bound_readurl():
    from cloudinit import url_helper

    orig = url_helper.readurl
    if getattr(orig, "_hotplug_bounded", False):
        return

    def readurl(*args, **kwargs):
        if len(args) < 3 and not kwargs.get("timeout"):
            kwargs["timeout"] = _URL_TIMEOUT_S
        return orig(*args, **kwargs)

    readurl._hotplug_bounded = True
    url_helper.readurl = readurl


_bound_readurl()


def _replace_file(path, data, mode):
    """Write a temp file beside `path`, fsync it, rename it over `path`. The temp name,
    .<name>.<8 random>.tmp, is one the start-up sweep (src/util/sweep.ts) knows as ours."""
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=os.path.dirname(path) or ".")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.rename(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _atomic_cloudinit_writes():
    """cloud-init's util.write_file truncates the file in place and then writes it: a bridge
    killed in between (kill -9, OOM) leaves an empty or half-written 50-cloud-init or
    instance-data.json. While the bridge runs, whole-file writes go through a temp file and a
    rename instead, so every file is the old or the new version."""
    from cloudinit import util

    orig = util.write_file
    if getattr(orig, "_hotplug_atomic", False):
        return

    def write_file(filename, content, mode=0o644, omode="wb", preserve_mode=False, *, ensure_dir_exists=True):
        if omode not in ("wb", "w"):
            return orig(filename, content, mode, omode, preserve_mode, ensure_dir_exists=ensure_dir_exists)
        if preserve_mode:
            try:
                mode = util.get_permissions(filename)
            except OSError:
                pass
        d = os.path.dirname(filename) or "."
        if ensure_dir_exists:
            util.ensure_dir(d)
        _replace_file(filename, util.encode_text(content), mode)

    write_file._hotplug_atomic = True
    util.write_file = write_file


_atomic_cloudinit_writes()


def _die_with_parent():
    """Die with the node process that drives us. Otherwise a worker killed with -9 leaves this
    process finishing its current call (an apply, writing files and running ifup) after the
    kernel dropped the worker's apply lock, concurrently with the next worker."""
    try:
        import ctypes
        import signal

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGKILL), 0, 0, 0)  # PR_SET_PDEATHSIG
    except Exception:  # not Linux, no libc: best effort
        return
    if os.getppid() == 1:  # the parent died before prctl
        os._exit(1)


_die_with_parent()


class BridgeError(Exception):
    """An expected failure, reported to TS as one line."""

    kind = "BridgeError"


class UnsafeCache(BridgeError):
    kind = "UnsafeCache"


class NoCache(BridgeError):
    kind = "NoCache"


class RefreshFailed(BridgeError):
    kind = "RefreshFailed"


class UnsafePath(BridgeError):
    """A file we would replace is a symlink or not a regular file: retrying cannot help."""

    kind = "UnsafePath"


class _State:
    init = None  # stages.Init
    ds = None  # the loaded DataSource
    obj_pkl = None
    logging_ready = False
    rejected = {}  # mac -> why its metadata was refused (last crawl)


S = _State()


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

    wrapper.__name__ = fn.__name__
    wrapper.__doc__ = fn.__doc__
    return wrapper


# ---------------------------------------------------------------- obj.pkl I/O

# Ownership and mode checks stop an unprivileged writer; this allow-list also stops
# a hostile pickle that did get root-owned: unpickling can only reference classes of
# cloud-init (and the email classes of its user-data) and plain data types, never a function such as os.system or eval.
_SAFE_GLOBALS = {
    "builtins": {"set", "frozenset", "object", "bytearray", "bytes", "dict", "list", "tuple", "str", "int", "float", "complex", "bool", "slice", "range"},
    "collections": {"OrderedDict", "defaultdict", "deque"},
    "copyreg": {"_reconstructor"},
    "datetime": {"datetime", "date", "time", "timedelta", "timezone"},
    "uuid": {"UUID"},
    "_codecs": {"encode"},
}


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if name in _SAFE_GLOBALS.get(module, ()):
            return super().find_class(module, name)
        # cloud-init's classes, and the stdlib email classes its processed user-data holds.
        if module.split(".")[0] in ("cloudinit", "email"):
            obj = super().find_class(module, name)
            if isinstance(obj, type):
                return obj
        raise UnsafeCache("refusing obj.pkl: it references %s.%s, which is not allowed" % (module, name))


def _safe_loads(raw):
    import io

    return _RestrictedUnpickler(io.BytesIO(raw)).load()



def _read_trusted_pickle(path):
    """Read obj.pkl only if it is safe to unpickle (unpickling runs code).

    Opened with O_NOFOLLOW and checked with fstat on the same descriptor, so a
    file swapped in between the check and the read cannot be loaded.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        raise NoCache("no cached datasource at %s (has cloud-init run on this instance?)" % path)
    except OSError as e:
        if e.errno == 40:  # ELOOP: a symlink
            raise UnsafeCache("refusing %s: it is a symlink" % path)
        raise BridgeError("cannot open %s: %s" % (path, e.strerror))
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise UnsafeCache("refusing %s: not a regular file" % path)
        if st.st_uid != 0:
            raise UnsafeCache("refusing %s: owned by uid %d, not root" % (path, st.st_uid))
        if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            raise UnsafeCache(
                "refusing %s: writable by group or others (mode %o)" % (path, stat.S_IMODE(st.st_mode))
            )
        chunks = []
        while True:
            b = os.read(fd, 1 << 20)
            if not b:
                break
            chunks.append(b)
        return b"".join(chunks)
    finally:
        os.close(fd)


def _check_target(path):
    """Refuse to replace a planted symlink (it must not redirect a root write) or anything that
    is not a regular file (a directory, FIFO, device where our file belongs)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISLNK(st.st_mode):
        raise UnsafePath("refusing to write %s: it is a symlink" % path)
    if not stat.S_ISREG(st.st_mode):
        raise UnsafePath("refusing to write %s: it is not a regular file" % path)


def _atomic_write(path, data, mode):
    """Readers see the old or the new file, never a mix: temp file in the same
    directory, fsync, rename, fsync the directory. A planted symlink is refused."""
    d = os.path.dirname(path)
    os.makedirs(d, mode=0o755, exist_ok=True)
    _check_target(path)
    _replace_file(path, data, mode)
    dfd = os.open(d, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def _store_pickle_atomic(ds, path):
    # Upstream truncates obj.pkl in place (a crash leaves a corrupt cache); same mode 0400.
    _atomic_write(path, pickle.dumps(ds), 0o400)


# ---------------------------------------------------------------- helpers


def _mac_list(netcfg):
    macs = []
    for iface in _interfaces(netcfg):
        mac = iface.get("mac_address")
        if mac:
            macs.append(mac.lower())
    return sorted(set(macs))


def _interfaces(netcfg):
    """Physical interfaces of a v1 or v2 network config as [{name, mac_address}]."""
    if not netcfg:
        return []
    out = []
    if netcfg.get("version") == 2:
        for name, eth in (netcfg.get("ethernets") or {}).items():
            mac = (eth.get("match") or {}).get("macaddress")
            out.append({"name": eth.get("set-name", name), "mac_address": mac})
    else:
        for item in netcfg.get("config") or []:
            if item.get("type") == "physical":
                out.append({"name": item.get("name"), "mac_address": item.get("mac_address")})
    return out


def _ec2_nics(ds):
    """MAC -> {device_number, ipv4s, ...} from the crawled Ec2 metadata, for policy routing."""
    md = getattr(ds, "metadata", None) or {}
    macs = ((md.get("network") or {}).get("interfaces") or {}).get("macs") or {}
    out = {}
    for mac, m in macs.items():
        if not isinstance(m, dict):
            continue

        def lines(v):
            if v is None:
                return []
            if isinstance(v, list):
                return [str(x) for x in v]
            return [x for x in str(v).splitlines() if x.strip()]

        out[str(mac).lower()] = {
            "mac": str(mac).lower(),
            "device_number": m.get("device-number"),
            "network_card": m.get("network-card"),
            "interface_id": m.get("interface-id"),
            "ipv4s": lines(m.get("local-ipv4s")),
            "ipv6s": lines(m.get("ipv6s")),
            "subnet_ipv4_cidr": m.get("subnet-ipv4-cidr-block"),
            "subnet_ipv6_cidrs": lines(m.get("subnet-ipv6-cidr-blocks")),
            "ipv4_prefixes": lines(m.get("ipv4-prefix")),
            "ipv6_prefixes": lines(m.get("ipv6-prefix")),
        }
    return out


def _summary(init, ds):
    try:
        netcfg = _network_config(init)
    except StaleCache:
        netcfg = None
    primary_mac = None
    md = getattr(ds, "metadata", None) or {}
    if isinstance(md, dict) and md.get("mac"):
        primary_mac = str(md.get("mac")).lower()
    return {
        "datasource": type(ds).__name__,
        "dsname": getattr(ds, "dsname", None),
        "instance_id": ds.get_instance_id(),
        "platform": getattr(ds, "platform_type", None),
        "subplatform": getattr(ds, "subplatform", None),
        "cloud_name": getattr(ds, "cloud_name", None),
        "macs": _mac_list(netcfg),
        "primary_mac": primary_mac,
        "nics": _ec2_nics(ds),
        "hotplug": _hotplug_state(init, ds),
        "rejected_nics": dict(S.rejected),
        "rejected_entries": dict(getattr(S.rejected, "entries", {})),
    }


class StaleCache(BridgeError):
    kind = "StaleCache"


def _network_config(init):
    ds = init.datasource
    # cloud-init's Ec2 network_config re-crawls (with ephemeral DHCP) and rewrites obj.pkl in
    # place when the cached metadata has no "network" key (what a partial crawl leaves): never
    # let a read of the config write the cache. refresh() repairs such a cache.
    md = getattr(ds, "metadata", None)
    if _is_ec2(ds) and getattr(ds, "_network_config", None) == sources.UNSET and not (isinstance(md, dict) and isinstance(md.get("network"), dict)):
        raise StaleCache("cached datasource has no network metadata (a partial crawl?); run `hotplug refresh-metadata`")
    cfg, _src = init._find_networking_config()
    return cfg


def _is_ec2(ds):
    from cloudinit.sources.DataSourceEc2 import DataSourceEc2

    return isinstance(ds, DataSourceEc2)


_MAC_KEY_OK = __import__("re").compile(r"^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$")
_INDEX_OK = __import__("re").compile(r"^(0|[1-9][0-9]{0,3})$")
_ID_OK = __import__("re").compile(r"^[A-Za-z0-9._:-]{1,64}$")
_MAX_ADDRS = 64


def _values(v):
    """A leaf as cloud-init's materializer hands it on: a list (it split on line breaks) or one string."""
    if isinstance(v, list):
        return v
    return [v]


def _nic_problem(mac, m):
    """Why a NIC's metadata must not reach the renderer (its values end up in ifupdown stanzas,
    run by /bin/sh, and in `ip` argv), or None."""
    import ipaddress

    if not isinstance(mac, str) or not _MAC_KEY_OK.match(mac):
        return "MAC %s is not a MAC address" % json.dumps(str(mac)[:40])
    if not isinstance(m, dict):
        return "its entry is not a directory"
    leaf = m.get("mac")
    if leaf is not None and (not isinstance(leaf, str) or leaf.lower() != mac.lower()):
        return "mac %s differs from its key" % json.dumps(str(leaf)[:40])
    for k in ("device-number", "network-card", "network-card-index"):
        v = m.get(k)
        if v is not None and (not isinstance(v, str) or not _INDEX_OK.match(v)):
            return "%s %s is not an integer 0-9999" % (k, json.dumps(str(v)[:40]))
    for k, fam, net in (
        ("local-ipv4s", 4, False),
        ("ipv6s", 6, False),
        ("subnet-ipv4-cidr-block", 4, True),
        ("subnet-ipv6-cidr-blocks", 6, True),
        ("ipv4-prefix", 4, True),
        ("ipv6-prefix", 6, True),
    ):
        v = m.get(k)
        if v is None:
            continue
        vals = _values(v)
        if len(vals) > _MAX_ADDRS:
            return "%s lists %d values (at most %d)" % (k, len(vals), _MAX_ADDRS)
        for i, x in enumerate(vals):
            try:
                if not isinstance(x, str) or len(x) > 64:
                    raise ValueError
                a = ipaddress.ip_network(x, strict=True) if net else ipaddress.ip_address(x)
                if a.version != fam:
                    raise ValueError
            except ValueError:
                return "%s[%d] %s is not an IPv%d %s" % (k, i, json.dumps(str(x)[:40]), fam, "network" if net else "address")
    iid = m.get("interface-id")
    if iid is not None and (not isinstance(iid, str) or not _ID_OK.match(iid)):
        return "interface-id %s is not an id" % json.dumps(str(iid)[:40])
    return None


class _Rejected(dict):
    """{key: why} of refused NIC entries; .entries says, per key, whether the key is a MAC at all
    and the MAC its `mac` leaf names (when that is one): what lets the worker tell which attached
    NIC a refused entry was meant for, when the key cannot match any device."""

    def __init__(self):
        super().__init__()
        self.entries = {}


def _leaf_mac(m):
    leaf = m.get("mac") if isinstance(m, dict) else None
    if isinstance(leaf, str) and _MAC_KEY_OK.match(leaf.strip()):
        return leaf.strip().lower()
    return None


def _sanitize_nics(macs, old_macs):
    """Refuse NIC metadata with invalid values, per NIC: a NIC we already knew keeps its previous
    (valid) entry, a new one is left out. Returns {mac: reason}; each refusal is logged."""
    rejected = _Rejected()
    if not isinstance(macs, dict):
        return rejected
    old_macs = old_macs if isinstance(old_macs, dict) else {}
    for mac in list(macs.keys()):
        why = _nic_problem(mac, macs[mac])
        if not why:
            continue
        key = str(mac).lower()[:40]
        rejected.entries[key] = {
            "why": why,
            "key_is_mac": isinstance(mac, str) and bool(_MAC_KEY_OK.match(mac)),
            "mac": _leaf_mac(macs[mac]),
        }
        prev = old_macs.get(mac)
        del macs[mac]
        if prev is not None and not _nic_problem(mac, prev):
            import copy

            macs[mac] = copy.deepcopy(prev)
            why += "; it keeps its previous metadata"
        rejected[key] = why
        rejected.entries[key]["why"] = why
        sys.stderr.write("hotplug bridge: warn: refused metadata of NIC %s: %s\n" % (json.dumps(key), why))
    return rejected


def _ec2_macs(md):
    if not isinstance(md, dict):
        return None
    net = md.get("network")
    ifs = net.get("interfaces") if isinstance(net, dict) else None
    return ifs.get("macs") if isinstance(ifs, dict) else None


def _check_complete(ds, instance_id):
    """cloud-init accepts a crawl whose every request failed (the Ec2 helpers log and return
    {}): accept only metadata with the same instance-id and, for Ec2, a network subtree."""
    md = getattr(ds, "metadata", None)
    if not isinstance(md, dict) or not md:
        raise RefreshFailed("metadata crawl of %s failed: the metadata service returned no usable metadata" % type(ds).__name__)
    if _is_ec2(ds):
        got = md.get("instance-id")
        if not isinstance(got, str) or not got:
            raise RefreshFailed("metadata crawl of %s is incomplete: no instance-id" % type(ds).__name__)
        macs = ((md.get("network") or {}).get("interfaces") or {}).get("macs") if isinstance(md.get("network"), dict) else None
        if not isinstance(macs, dict) or not macs:
            raise RefreshFailed("metadata crawl of %s is incomplete: no network interfaces" % type(ds).__name__)
        if instance_id and got != instance_id:
            raise RefreshFailed("metadata crawl returned instance-id %s, cached is %s; refusing to switch instance" % (got, instance_id))


def _hotplug_state(init, ds):
    """The same decision as `cloud-init devel hotplug-hook query`."""
    if not ds.get_supported_events([EventType.HOTPLUG]):
        return {"enabled": False, "reason": "datasource %s does not support hotplug" % type(ds).__name__}
    if not stages.update_event_enabled(
        datasource=ds, cfg=init.cfg, event_source_type=EventType.HOTPLUG, scope=EventScope.NETWORK
    ):
        return {"enabled": False, "reason": "hotplug not in updates.network.when of user/vendor data"}
    return {"enabled": True, "reason": "datasource supports hotplug and updates.network.when has hotplug"}


def _require_open():
    if S.init is None or S.ds is None:
        raise BridgeError("bridge: open_instance() was not called")


# ---------------------------------------------------------------- entry points


@_result
def open_instance(obj_pkl=None, setup_logging=True):
    """Load cloud-init's cached datasource the way `fetch(existing="trust")` does,
    after checking that obj.pkl is safe to unpickle."""
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
    return {"obj_pkl": path, "summary": _summary(init, ds)}


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
    return {"network_config": _network_config(S.init)}


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
        if hasattr(ds, "_network_config"):
            ds._network_config = sources.UNSET
        ds._dirty_cache = True
        ds.clear_cached_attrs()
        ds._dirty_cache = True
        if not ds._get_data():
            raise RefreshFailed(
                "metadata crawl of %s failed (metadata service unreachable or incomplete)" % type(ds).__name__
            )
        _check_complete(ds, before_id)
        if _is_ec2(ds):
            S.rejected = _sanitize_nics(_ec2_macs(ds.metadata), old_macs)
        netcfg = _network_config(S.init)
        if netcfg is None:
            raise RefreshFailed("datasource returned no network config after refresh")
        summ = _summary(S.init, S.ds)
        # Only now is the new state accepted; any failure above restores the old one.
        ok = True
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


def _renderer():
    return S.ds.distro._get_renderer()


@_result
def preview(netcfg_json=None):
    """Render the config into a scratch root and return the files it would write
    (path, new content, current content). Changes nothing on the system."""
    _require_open()
    netcfg = json.loads(netcfg_json) if netcfg_json else _network_config(S.init)
    renderer = _renderer()
    state = parse_net_config_data(netcfg, renderer=renderer)
    files = []
    with tempfile.TemporaryDirectory(prefix="cloud-hotplug-preview.") as root:
        renderer.render_network_state(state, target=root)
        for dirpath, _dirs, names in os.walk(root):
            for n in names:
                full = os.path.join(dirpath, n)
                rel = "/" + os.path.relpath(full, root)
                with open(full, "r", errors="replace") as f:
                    new = f.read()
                cur = None
                if os.path.isfile(rel):
                    with open(rel, "r", errors="replace") as f:
                        cur = f.read()
                files.append({"path": rel, "content": new, "current": cur, "changed": new != cur})
    return {"renderer": type(renderer).__name__, "network_config": netcfg, "files": sorted(files, key=lambda x: x["path"])}


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
        "interfaces": _interfaces(netcfg),
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
    if hasattr(S.ds, "_network_config"):
        S.ds._network_config = sources.UNSET
    return {"network_config": _network_config(S.init), "summary": _summary(S.init, S.ds)}


# Bring-up of many interfaces at once (a NIC storm), after reading cloud-init 22.4's
# cloudinit/net/activators.py:
# - IfUpDownActivator (`ifup <name>`), NetworkManagerActivator (`nmcli connection load` + `up` of
#   that name's connection file) and NetworkdActivator (`ip link set up <name>`) act on one
#   interface per call and inherit NetworkActivator.bring_up_interfaces, a serial loop that stops
#   at the first failure. Their calls for different interfaces are independent, so they run in a
#   small thread pool (each call waits on a subprocess -- ifup on its DHCP exchange -- so threads
#   are enough under the GIL). ifupdown 0.8 (Debian 12: 0.8.41) allows that: each ifup holds an
#   fcntl lock on /run/network/ifstate.<name> for its whole run and rewrites the aggregate
#   /run/network/ifstate under /run/network/.ifstate.lock through a temp file and a rename
#   (main.c lock_interface/update_state; seen with strace on 0.8.41). Debian itself runs one
#   ifup@<name>.service per hotplugged NIC concurrently.
# - NetplanActivator runs `netplan apply` (every interface) from each of its bring_up_* methods
#   and overrides bring_up_interfaces to do it once: N calls would re-apply everything N times,
#   racing each other. An activator that overrides bring_up_interfaces like that is called once
#   for the whole list, and its one result is reported for every name.
_BRING_UP_WORKERS = 8


def _brings_up_all_at_once(activator):
    """True when the activator has its own bring_up_interfaces (netplan's single `netplan
    apply`) instead of NetworkActivator's loop over bring_up_interface."""
    from cloudinit.net.activators import NetworkActivator

    own = getattr(activator, "bring_up_interfaces", None)
    if own is None:
        return False
    base = NetworkActivator.bring_up_interfaces
    return getattr(own, "__func__", own) is not getattr(base, "__func__", base)


def _bring_up_one(activator, name):
    t0 = time.monotonic()
    try:
        ok = bool(activator.bring_up_interface(name))
    except Exception as e:  # one bad interface must not hide the others
        LOG.warning("bring up %s failed: %s", name, e)
        ok = False
    ms = int((time.monotonic() - t0) * 1000)
    LOG.info("bring up %s: %s in %d ms (%s)", name, "ok" if ok else "failed", ms, activator.__name__)
    return ok, ms


@_result
def bring_up(ifnames):
    """Bring up `ifnames` through the distro's activator; every name is tried and reported
    (cloud-init's bring_up_interfaces stops at the first failure). Per-interface activators
    run concurrently, at most _BRING_UP_WORKERS at a time; an all-at-once one (netplan) is
    called once. See the comment above for why."""
    _require_open()
    activator = S.ds.distro.network_activator
    if not activator:
        raise BridgeError("no network activator available")
    names = list(dict.fromkeys(ifnames))  # once each, in order: two ifups of one NIC would only queue on its lock
    results, durations = {}, {}
    if not names:
        pass
    elif _brings_up_all_at_once(activator):
        t0 = time.monotonic()
        try:
            ok = bool(activator.bring_up_interfaces(names))
        except Exception as e:
            LOG.warning("bring up %s failed: %s", ",".join(names), e)
            ok = False
        ms = int((time.monotonic() - t0) * 1000)
        LOG.info("bring up %s at once: %s in %d ms (%s)", ",".join(names), "ok" if ok else "failed", ms, activator.__name__)
        for name in names:
            results[name], durations[name] = ok, ms
    elif len(names) == 1:
        results[names[0]], durations[names[0]] = _bring_up_one(activator, names[0])
    else:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=min(len(names), _BRING_UP_WORKERS), thread_name_prefix="bring-up") as pool:
            futures = {name: pool.submit(_bring_up_one, activator, name) for name in names}
        for name in names:  # the with block waited for all of them; _bring_up_one never raises
            results[name], durations[name] = futures[name].result()
    return {"results": results, "activator": activator.__name__, "durations_ms": durations}


@_result
def refresh_network(timeout=2):
    """Re-crawl only the network subtree (meta-data/network/) of an Ec2-family
    datasource: what a NIC hotplug needs, at a fraction of a full crawl's requests.
    The datasource changes only when the whole subtree was read; nothing is written."""
    _require_open()
    from cloudinit.sources.DataSourceEc2 import DataSourceEc2, AWS_TOKEN_REDACT
    from cloudinit.sources.helpers import ec2 as ec2_helper

    ds = S.ds
    if not isinstance(ds, DataSourceEc2) or not getattr(ds, "metadata_address", None) or not isinstance(ds.metadata, dict):
        return {"supported": False}
    crawled = getattr(ds, "_crawled_metadata", None) or {}
    version = crawled.get("_metadata_api_version") or ds.min_metadata_version
    t0 = time.monotonic()
    aws = ds.cloud_name == "aws"
    md = ec2_helper._get_instance_metadata(
        tree="meta-data/network/",
        api_version=version,
        metadata_address=ds.metadata_address,
        timeout=timeout,
        retries=1,
        headers_cb=ds._get_headers,
        headers_redact=AWS_TOKEN_REDACT,
        exception_cb=ds._refresh_stale_aws_token_cb if aws else None,
    )
    if not isinstance(md, dict) or not isinstance(md.get("interfaces"), dict):
        raise RefreshFailed("metadata crawl of the network subtree failed (metadata service unreachable or incomplete)")
    S.rejected = _sanitize_nics(_ec2_macs({"network": md}), _ec2_macs(ds.metadata))
    ds.metadata["network"] = md
    if isinstance(crawled.get("meta-data"), dict) and crawled["meta-data"] is not ds.metadata:
        crawled["meta-data"]["network"] = md
    if hasattr(ds, "_network_config"):
        ds._network_config = sources.UNSET
    netcfg = _network_config(S.init)
    return {
        "supported": True,
        "duration_ms": int((time.monotonic() - t0) * 1000),
        "summary": _summary(S.init, ds),
        "network_config": netcfg,
    }
