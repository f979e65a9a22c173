"""The bridge's one piece of process state (the opened instance) and its expected-failure classes.

Every module of the bridge shares these, so they live apart from all of them.
"""


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


class StaleCache(BridgeError):
    kind = "StaleCache"


class _State:
    init = None  # stages.Init
    ds = None  # the loaded DataSource
    obj_pkl = None
    logging_ready = False
    rejected = {}  # mac -> why its metadata was refused (last crawl)
    md_fallback = None  # OpenStack metadata service a config drive may fall back to (opt-in)


S = _State()


def require_open():
    if S.init is None or S.ds is None:
        raise BridgeError("bridge: open_instance() was not called")
