"""Process-wide repairs of cloud-init 22.4 that the bridge installs once, when it is loaded:
bounded metadata requests (within a crawl, one keep-alive connection: hb_keepalive), atomic whole-file
writes, no YAML dump per parsed NIC, and dying with the node process.
"""

import contextlib
import os
import threading

from hb_files import _replace_file

# cloud-init 22.4's wait_for_url shortens its last attempt's timeout with int(remaining) or None,
# and its token refresh calls readurl with no timeout at all: against a metadata service that
# accepts and never answers, one request then blocks forever. Every request gets a bound.
_URL_TIMEOUT_S = 5.0


# readurl's 13th positional parameter is `session`: a call that passes that many brings its own.
_READURL_SESSION_POS = 12

# The session of the crawl running in this thread (metadata_crawl), if any.
_CRAWL = threading.local()


def _crawl_session():
    """A requests.Session that readurl cannot close: readurl wraps every request in
    `with session as sess`, which closes the session (and its connection) after one request, so a
    crawl of N leaves opens N connections and builds N sessions. This one lives until its crawl ends.
    Without proxy variables, a CA bundle variable or a netrc file, the environment has nothing for
    requests to apply, and trust_env=False spares the scan of os.environ it does on every request."""
    import requests

    class _CrawlSession(requests.Session):
        def __exit__(self, *exc):
            return False

    s = _CrawlSession()
    if not _environment_matters():
        s.trust_env = False
    return s


def _environment_matters():
    """Would requests' trust_env change anything for a request here (proxies, CA bundle, netrc)?"""
    if os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE"):
        return True
    return _environment_matters_for_http()


def _environment_matters_for_http():
    """Would it for a plain http:// request (proxies, netrc: a CA bundle only matters to https)?"""
    import urllib.request

    if urllib.request.getproxies() or os.environ.get("NETRC"):
        return True
    home = os.path.expanduser("~")
    return any(os.path.exists(os.path.join(home, n)) for n in (".netrc", "_netrc"))


@contextlib.contextmanager
def metadata_crawl():
    """Within this block, every readurl of this thread that brings no session of its own shares one
    keep-alive session (the crawl's 20-300 requests then use one connection), and leaves out its
    per-request "open ... with configuration" debug line (the "Read from <url> (status, size)" line
    stays). Its plain http GETs answered 200 skip requests altogether (hb_keepalive) unless the
    environment holds a proxy or netrc for requests to apply. The session is closed when the block ends; nested blocks reuse
    the outer one."""
    if getattr(_CRAWL, "session", None) is not None:
        yield
        return
    import hb_keepalive

    _CRAWL.session = _crawl_session()
    _CRAWL.conn = None if _environment_matters_for_http() else hb_keepalive.Connection()
    try:
        yield
    finally:
        s, _CRAWL.session = _CRAWL.session, None
        c, _CRAWL.conn = _CRAWL.conn, None
        if c is not None:
            c.close()
        import requests

        requests.Session.close(s)


@contextlib.contextmanager
def base_config_read_once():
    """Within this block cloud-init's base config (/etc/cloud/cloud.cfg, cloud.cfg.d/*, the runtime
    and kernel command line config) is read and parsed once: opening an instance reads it twice,
    for Init.paths and again for Init.read_cfg with the datasource, and its YAML parse is most of
    the open (~10 ms each on 2 cores). Each caller gets its own copy."""
    import copy

    from cloudinit import stages

    orig = stages.fetch_base_config
    memo = {}

    def fetch_base_config(*, instance_data_file=None):
        if instance_data_file not in memo:
            memo[instance_data_file] = orig(instance_data_file=instance_data_file)
        return copy.deepcopy(memo[instance_data_file])

    stages.fetch_base_config = fetch_base_config
    try:
        yield
    finally:
        stages.fetch_base_config = orig


def _bound_readurl():
    from cloudinit import url_helper

    orig = url_helper.readurl
    if getattr(orig, "_hotplug_bounded", False):
        return

    def with_session(*args, **kwargs):
        session = getattr(_CRAWL, "session", None)
        if session is not None and len(args) <= _READURL_SESSION_POS and kwargs.get("session") is None:
            kwargs["session"] = session
            kwargs.setdefault("log_req_resp", False)
        return orig(*args, **kwargs)

    def readurl(*args, **kwargs):
        if len(args) < 3 and not kwargs.get("timeout"):
            kwargs["timeout"] = _URL_TIMEOUT_S
        conn = getattr(_CRAWL, "conn", None)
        if conn is not None and args:
            import hb_keepalive

            return hb_keepalive.readurl(conn, with_session, args[0], args, kwargs)
        return with_session(*args, **kwargs)

    readurl._hotplug_bounded = True
    url_helper.readurl = readurl


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


class _LazyStateDump:
    """The YAML text of a network state, made only if something turns it into a string."""

    __slots__ = ("_state",)

    def __init__(self, state):
        self._state = state

    def __str__(self):
        from cloudinit import safeyaml

        return safeyaml.dumps(self._state)


def _lazy_network_state_dump():
    """cloud-init 22.4's NetworkStateInterpreter.handle_physical ends with a bare
    self.dump_network_state(): it YAML-dumps the whole state parsed so far and throws the text
    away, once per NIC, so parsing N NICs costs O(N^2) (most of the bridge's CPU in a 16-NIC
    storm; later cloud-init dropped the line). Its other callers pass the text to LOG.debug, which
    formats a lazy object only when debug records are emitted: same text then, no work otherwise."""
    from cloudinit.net import network_state

    cls = network_state.NetworkStateInterpreter
    if getattr(cls.dump_network_state, "_hotplug_lazy", False):
        return

    def dump_network_state(self):
        return _LazyStateDump(self._network_state)

    dump_network_state._hotplug_lazy = True
    cls.dump_network_state = dump_network_state


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


def install():
    """All four (the first two and the last in the order the bridge always applied them)."""
    _bound_readurl()
    _atomic_cloudinit_writes()
    _lazy_network_state_dump()
    _die_with_parent()
