"""Give memory back when the bridge goes idle: a long-lived bridge (the daemon's) otherwise keeps
the peak of its busiest batch. Two seconds after the last heavy call, a daemon thread runs a full
gc.collect() and glibc's malloc_trim(0), which returns freed heap pages to the kernel (pymalloc
arenas that emptied are freed by Python itself). Off the call path: no event waits for it."""

import ctypes
import gc
import threading

IDLE_S = 2.0

_lock = threading.Lock()
_timer = None
try:
    _trim = ctypes.CDLL(None).malloc_trim
except (OSError, AttributeError):  # not glibc
    _trim = None


def _collect():
    gc.collect()
    if _trim is not None:
        _trim(0)


def after_heavy_call():
    """(Re)start the idle countdown; a one-shot process exits without waiting for it."""
    global _timer
    with _lock:
        if _timer is not None:
            _timer.cancel()
        _timer = threading.Timer(IDLE_S, _collect)
        _timer.daemon = True
        _timer.start()
