"""network_data.json (OpenStack's metadata service and ConfigDrive) as the bridge reads it: the
checks that keep hostile values (which end up in ifupdown stanzas, run by /bin/sh, and in `ip`
argv) away from the renderer, link by link, and the one-request read of it (metadata service, or
a config drive's file; through an ephemeral DHCP lease when the instance has no route at all).
"""

import copy
import ipaddress
import json
import re
import sys

from hb_state import S, RefreshFailed

_MAC_OK = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
_ID_OK = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
_IFNAME_OK = re.compile(r"^[A-Za-z0-9_.-]{1,15}$")
_NET_TYPES = {
    "ipv4_dhcp", "ipv6_dhcp", "ipv6_slaac", "ipv6_dhcpv6-stateless", "ipv6_dhcpv6-stateful",
    "ipv4", "ipv6", "static", "static6",
}
_MAX_ITEMS = 64


def _is_config_drive(ds):
    from cloudinit.sources.DataSourceConfigDrive import DataSourceConfigDrive

    return isinstance(ds, DataSourceConfigDrive)


# ------------------------------------------------------------------ network_data.json checks


def _ip(v, fam=None):
    if not isinstance(v, str) or len(v) > 64:
        raise ValueError
    a = ipaddress.ip_address(v)
    if fam and a.version != fam:
        raise ValueError
    return a


def _mask_ok(v, fam):
    """A netmask as Nova writes it (dotted or IPv6 mask) or a prefix length."""
    if isinstance(v, int) or (isinstance(v, str) and v.isdigit()):
        if not 0 <= int(v) <= (32 if fam == 4 else 128):
            raise ValueError
        return
    # A contiguous mask (IPv6's ip_network takes no mask form, so checked by hand for both).
    bits = 32 if fam == 4 else 128
    m = int(_ip(v, fam))
    ones = bin(m).count("1")
    if m != ((1 << bits) - 1) ^ ((1 << (bits - ones)) - 1):
        raise ValueError


def _network_problem(n):
    """Why one entry of `networks` must not reach the renderer (its values end up in ifupdown
    stanzas, run by /bin/sh, and in `ip` argv), or None."""
    if not isinstance(n, dict):
        return "a network entry is not an object"
    t = n.get("type")
    if t not in _NET_TYPES:
        return "network type %s is not one cloud-init converts" % json.dumps(str(t)[:40])
    fam = 6 if "6" in t else 4
    try:
        if t in ("ipv4", "ipv6", "static", "static6"):
            _ip(n.get("ip_address"), fam)
            if n.get("netmask") is not None:
                _mask_ok(n.get("netmask"), fam)
        if n.get("gateway") is not None:
            _ip(n.get("gateway"), fam)
    except ValueError:
        return "network %s has an invalid address, netmask or gateway" % json.dumps(str(n.get("id"))[:40])
    routes = n.get("routes") or []
    if not isinstance(routes, list) or len(routes) > _MAX_ITEMS:
        return "routes of network %s are not a list of at most %d" % (json.dumps(str(n.get("id"))[:40]), _MAX_ITEMS)
    for r in routes:
        try:
            if not isinstance(r, dict):
                raise ValueError
            rf = _ip(r.get("network")).version
            _mask_ok(r.get("netmask"), rf)
            _ip(r.get("gateway"), rf)
        except (ValueError, TypeError):
            return "network %s has an invalid route %s" % (json.dumps(str(n.get("id"))[:40]), json.dumps(str(r)[:60]))
    for k in ("id", "network_id"):
        v = n.get(k)
        if v is not None and (not isinstance(v, str) or not _ID_OK.match(v)):
            return "network %s %s is not an id" % (k, json.dumps(str(v)[:40]))
    return None


def _link_problem(link):
    if not isinstance(link, dict):
        return "a link entry is not an object"
    if not isinstance(link.get("id"), str) or not _ID_OK.match(link["id"]):
        return "link id %s is not an id" % json.dumps(str(link.get("id"))[:40])
    if not isinstance(link.get("type"), str) or not _ID_OK.match(link["type"]):
        return "link type %s is not a name" % json.dumps(str(link.get("type"))[:40])
    mac = link.get("ethernet_mac_address")
    if mac is not None and (not isinstance(mac, str) or not _MAC_OK.match(mac.lower())):
        return "ethernet_mac_address %s is not a MAC address" % json.dumps(str(mac)[:40])
    if link.get("type") in ("bond", "vlan"):
        return "link type %s is not handled by hotplug" % link["type"]
    name = link.get("name")
    if name is not None and (not isinstance(name, str) or not _IFNAME_OK.match(name)):
        return "link name %s is not an interface name" % json.dumps(str(name)[:40])
    mtu = link.get("mtu")
    if mtu is not None and (isinstance(mtu, bool) or not isinstance(mtu, int) or not 68 <= mtu <= 65535):
        return "mtu %s is not 68-65535" % json.dumps(str(mtu)[:20])
    return None


def sanitize_network_json(nj, old=None):
    """A copy of network_data.json without the links (and their networks) whose values are
    invalid; a link known from `old` keeps its previous valid entry. Returns (clean, rejected)
    with rejected as hb_metadata's {key: why} plus .entries."""
    from hb_metadata import _Rejected

    rejected = _Rejected()
    if not isinstance(nj, dict):
        return nj, rejected
    links = nj.get("links") if isinstance(nj.get("links"), list) else []
    networks = nj.get("networks") if isinstance(nj.get("networks"), list) else []
    services = nj.get("services") if isinstance(nj.get("services"), list) else []
    old_links = {}
    if isinstance(old, dict):
        for l in old.get("links") or []:
            if isinstance(l, dict) and isinstance(l.get("ethernet_mac_address"), str):
                old_links[l["ethernet_mac_address"].lower()] = (l, [n for n in old.get("networks") or [] if isinstance(n, dict) and n.get("link") == l.get("id")])
    out_links, out_nets = [], []
    for link in links[: _MAX_ITEMS * 4]:
        nets = [n for n in networks if isinstance(n, dict) and isinstance(link, dict) and n.get("link") == link.get("id")]
        why = _link_problem(link) or next((w for w in (_network_problem(n) for n in nets) if w), None)
        if not why:
            link = dict(link, ethernet_mac_address=link["ethernet_mac_address"].lower()) if link.get("ethernet_mac_address") else link
            out_links.append(link)
            out_nets.extend(nets)
            continue
        raw_mac = link.get("ethernet_mac_address") if isinstance(link, dict) else None
        mac = raw_mac.lower() if isinstance(raw_mac, str) and _MAC_OK.match(raw_mac.lower()) else None
        key = mac or str(link.get("id") if isinstance(link, dict) else link)[:40]
        rejected.entries[key] = {"why": why, "key_is_mac": bool(mac), "mac": mac}
        if mac and mac in old_links:
            prev, prev_nets = old_links[mac]
            out_links.append(copy.deepcopy(prev))
            out_nets.extend(copy.deepcopy(prev_nets))
            why += "; it keeps its previous metadata"
        rejected[key] = why
        rejected.entries[key]["why"] = why
        sys.stderr.write("hotplug bridge: warn: refused network_data.json link %s: %s\n" % (json.dumps(key), why))
    clean_services = []
    for s in services[:_MAX_ITEMS]:
        try:
            if isinstance(s, dict) and s.get("type") == "dns":
                _ip(s.get("address"))
                clean_services.append({"type": "dns", "address": s["address"]})
        except ValueError:
            pass
    return {"links": out_links, "networks": out_nets, "services": clean_services}, rejected


# ------------------------------------------------------------------ reading network_data.json


def _service_url(ds):
    """Base URL of the OpenStack metadata service: the one the crawl found, else a configured
    fallback (S.md_fallback, for ConfigDrive)."""
    return getattr(ds, "metadata_address", None) or S.md_fallback


def _unreachable(e):
    """No route to the metadata service at all (ENETUNREACH), not a service that fails."""
    return e.code is None and ("Errno 101" in str(e.cause) or "Network is unreachable" in str(e.cause))


def _read_through_ephemeral_dhcp(ds, url, timeout):
    """The instance has no route to the metadata service: its first (and only configured) port
    was detached and a new one attached (cloud-init #3463). Ask through an ephemeral DHCP lease
    on the fallback NIC, as cloud-init's Local datasources do at boot; the lease goes away after
    the request and the NIC is then configured from the answer."""
    from cloudinit import net, url_helper
    from cloudinit.net.ephemeral import EphemeralDHCPv4

    iface = net.find_fallback_nic()
    if not iface:
        raise RefreshFailed("metadata service unreachable (no route) and no NIC to reach it through")
    sys.stderr.write("hotplug bridge: info: metadata service unreachable (no route); asking through an ephemeral DHCP lease on %s\n" % iface)
    with EphemeralDHCPv4(iface, tmp_dir=ds.distro.get_tmp_exec_path()):
        return url_helper.readurl(url, timeout=timeout, retries=0)


def fetch_network_json(ds, timeout):
    """network_data.json now, in one request (metadata service) or one file read (config drive
    without a fallback). Returns (json, source) where source is 'service' or 'drive'."""
    import os

    from cloudinit import url_helper, util

    base = _service_url(ds) if not _is_config_drive(ds) or S.md_fallback else None
    if base:
        url = url_helper.combine_url(base, "openstack", "latest", "network_data.json")
        try:
            try:
                resp = url_helper.readurl(url, timeout=timeout, retries=0)
            except url_helper.UrlError as e:
                if not _unreachable(e):
                    raise
                resp = _read_through_ephemeral_dhcp(ds, url, timeout)
        except url_helper.UrlError as e:
            raise RefreshFailed("metadata probe failed: %s" % (e.code or e.cause))
        try:
            return json.loads(resp.contents.decode("utf-8", "replace")), "service"
        except ValueError as e:
            raise RefreshFailed("network_data.json from the metadata service is not JSON: %s" % e)
    src = getattr(ds, "source", None)
    if not isinstance(src, str) or not os.path.isdir(src):
        return getattr(ds, "network_json", None), "drive"
    path = os.path.join(src, "openstack", "latest", "network_data.json")
    try:
        return json.loads(util.load_file(path)), "drive"
    except (IOError, OSError, ValueError) as e:
        raise RefreshFailed("cannot read %s: %s" % (path, e))


def probe(ds, timeout):
    """MACs network_data.json lists now (one request), and whether that source can change."""
    nj, source = fetch_network_json(ds, timeout)
    macs, others = [], []
    for link in (nj or {}).get("links") or [] if isinstance(nj, dict) else []:
        m = link.get("ethernet_mac_address") if isinstance(link, dict) else None
        if isinstance(m, str) and _MAC_OK.match(m.strip().lower()):
            macs.append(m.strip().lower())
        elif len(others) < 64:
            others.append(str(link.get("id") if isinstance(link, dict) else link)[:40])
    return {"supported": True, "macs": sorted(set(macs)), "others": sorted(set(others)), "static": source == "drive"}


