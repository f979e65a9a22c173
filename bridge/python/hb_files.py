"""Files the bridge reads and writes as root: the guarded load of cloud-init's obj.pkl (a restricted
unpickler behind ownership and mode checks) and atomic, symlink-refusing replacement of files.
"""

import io
import os
import pickle
import stat
import tempfile

from hb_state import BridgeError, NoCache, UnsafeCache, UnsafePath


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
