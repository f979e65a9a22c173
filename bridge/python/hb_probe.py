"""The daemon poller's cheap change probe: ONE small metadata read per call that says whether the
network metadata may have changed versus what the opened datasource holds, so that the full
re-read (refresh_network) runs only then. EC2: a round-robin over small leaves (every NIC's
local-ipv4s most often; the MAC list, ipv6s and any delegated prefixes less often), through the
datasource's own headers (IMDSv2 token) and If-None-Match where the server gives an ETag.
OpenStack: network_data.json (one request; a config drive: one file read), compared by hash.
"""

import hashlib
import json

from hb_state import S, RefreshFailed

# Leaves a metadata-only change touches. local-ipv4s (secondary IPs) is by far the most common,
# so it gets HOT_PER_COLD of every HOT_PER_COLD + 1 probes (a NIC's is read every NICs × 7/6 probes
# on average); the rest share the remaining one.
HOT_LEAVES = ("local-ipv4s",)
COLD_LEAVES = ("ipv6s",)
# Delegated prefixes are probed only on NICs that have one (most NICs never do).
COLD_IF_PRESENT = ("ipv4-prefix", "ipv6-prefix")
HOT_PER_COLD = 6
MACS = "macs"


class _Probe:
    def __init__(self):
        self.slot = 0
        self.hot_i = 0
        self.cold_i = 0
        # (mac, leaf) -> what the server said at the last accepted re-read (set by remember_*):
        # the baseline where the datasource holds something else (a refused NIC keeps its old entry).
        self.seen = {}
        self.etags = {}  # url -> ETag of a response that matched the baseline
        self.json_seen = None


P = _Probe()


def reset():
    """A new datasource was opened: compare against it, from the start of the schedule."""
    global P
    P = _Probe()


def forget():
    """A full re-crawl was accepted: the datasource itself is the baseline again."""
    P.seen = {}
    P.etags = {}
    P.json_seen = None


def lines(v):
    """A leaf as a comparable value: None when absent, else its non-empty lines in order (cloud-init
    hands a multi-line leaf on as a list, a one-line one as a string)."""
    if v is None:
        return None
    if isinstance(v, (list, tuple)):
        return [str(x).strip() for x in v if str(x).strip()]
    return [x.strip() for x in str(v).splitlines() if x.strip()]


def remember_ec2(macs):
    """The raw network/interfaces/macs of a re-read just accepted (before its checks refused any
    NIC): what the next probes compare with."""
    P.seen = {}
    P.etags = {}
    if not isinstance(macs, dict):
        return
    P.seen[(None, MACS)] = sorted(str(m).lower() for m in macs)
    for mac, m in macs.items():
        if not isinstance(m, dict):
            continue
        for leaf in HOT_LEAVES + COLD_LEAVES + COLD_IF_PRESENT:
            P.seen[(str(mac).lower(), leaf)] = lines(m.get(leaf))


def _digest(nj):
    return hashlib.sha256(json.dumps(nj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def remember_json(nj):
    """The raw network_data.json of a re-read just accepted (before its checks)."""
    P.json_seen = _digest(nj)


def targets(macs):
    """(hot, cold) lists of (mac, leaf) for the NICs of the cached metadata {mac: entry}."""
    keys = sorted(str(m).lower() for m in macs)
    hot = [(m, leaf) for m in keys for leaf in HOT_LEAVES]
    cold = [(None, MACS)] + [(m, leaf) for m in keys for leaf in COLD_LEAVES]
    for mac, entry in sorted(macs.items(), key=lambda kv: str(kv[0]).lower()):
        if isinstance(entry, dict):
            cold += [(str(mac).lower(), leaf) for leaf in COLD_IF_PRESENT if entry.get(leaf) is not None]
    return hot, cold


def next_target(hot, cold):
    """The next resource of the round-robin: HOT_PER_COLD hot ones, then one cold one."""
    P.slot += 1
    if not hot or (cold and P.slot % (HOT_PER_COLD + 1) == 0):
        t = cold[P.cold_i % len(cold)]
        P.cold_i += 1
        return t
    t = hot[P.hot_i % len(hot)]
    P.hot_i += 1
    return t


def _cached(macs, mac, leaf):
    if leaf == MACS:
        return sorted(str(m).lower() for m in macs)
    for k, v in macs.items():
        if str(k).lower() == mac:
            return lines(v.get(leaf)) if isinstance(v, dict) else None
    return None


def _observed(leaf, body):
    if leaf == MACS:
        return sorted(x.strip().rstrip("/").lower() for x in body.splitlines() if x.strip())
    return lines(body)


def probe_ec2(ds, macs, timeout):
    """One GET of the next leaf. Returns the reply's fields."""
    from cloudinit import url_helper

    hot, cold = targets(macs)
    mac, leaf = next_target(hot, cold)
    crawled = getattr(ds, "_crawled_metadata", None) or {}
    version = crawled.get("_metadata_api_version") or ds.min_metadata_version
    rel = "meta-data/network/interfaces/macs/" + ("" if leaf == MACS else "%s/%s" % (mac, leaf))
    url = url_helper.combine_url(ds.metadata_address, version, rel)
    etag = P.etags.get(url)

    def headers(u):
        h = dict(ds._get_headers(u) or {})
        if etag:
            h["If-None-Match"] = etag
        return h

    requests = 0
    body, not_modified, resp = None, False, None
    for attempt in range(2):  # the second after a stale token (401): cloud-init then PUTs a new one
        token = getattr(ds, "_api_token", None)
        try:
            requests += 1
            resp = url_helper.readurl(url, headers_cb=headers, timeout=timeout, retries=0, log_req_resp=False)
        except url_helper.UrlError as e:
            if getattr(ds, "_api_token", None) != token:
                requests += 1
            if e.code == 404:
                break  # the leaf is absent (a NIC without IPv6): that is a value too
            if e.code == 401 and attempt == 0:
                ds._api_token = None
                continue
            raise RefreshFailed("metadata probe of %s failed: %s" % (rel, e.code or e.cause))
        if getattr(ds, "_api_token", None) != token:
            requests += 1  # _get_headers fetched a token first (a PUT)
        if resp.code == 304:
            not_modified = True
        else:
            body = resp.contents.decode("utf-8", "replace")
        break
    if not_modified:
        changed = False
    else:
        seen = (mac, leaf) in P.seen
        now = _observed(leaf, body) if body is not None else None
        changed = now != (P.seen[(mac, leaf)] if seen else _cached(macs, mac, leaf))
        got = resp.headers.get("ETag") if resp is not None and body is not None else None
        if got and not changed:
            # Only a response that matched the baseline: a changed one must be seen again (with its
            # body) until a re-read is accepted, or a failed re-read would hide the change.
            P.etags[url] = got
        elif changed:
            P.etags.pop(url, None)
    return {
        "supported": True,
        "changed": bool(changed),
        "resource": rel,
        "requests": requests,
        "not_modified": not_modified,
        "targets": len(hot) + len(cold),
    }


def probe_json(ds, timeout):
    """network_data.json read once (service or config drive), compared by hash with the last
    accepted re-read, else with the datasource's own copy."""
    from hb_netdata import fetch_network_json

    nj, source = fetch_network_json(ds, timeout)
    base = P.json_seen if P.json_seen is not None else _digest(getattr(ds, "network_json", None))
    return {
        "supported": True,
        "changed": _digest(nj) != base,
        "resource": "network_data.json" + (" (config drive)" if source == "drive" else ""),
        "requests": 1 if source == "service" else 0,
        "not_modified": False,
        "targets": 1,
    }
