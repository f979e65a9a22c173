"""What the bridge reads from a cloud-init datasource: the instance summary TS works from, the
network config, the hotplug decision, and the checks that keep hostile or partial EC2 metadata
(values that end up in ifupdown stanzas and `ip` argv) away from the renderer.
"""

import json
import re
import sys

from cloudinit import sources, stages
from cloudinit.event import EventScope, EventType

from hb_state import S, RefreshFailed, StaleCache
import hb_ports


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
        "ports": hb_ports.ports(ds, netcfg),
        "metadata_static": hb_ports.metadata_static(ds),
        "metadata_source": hb_ports.metadata_source(ds),
        "hotplug": _hotplug_state(init, ds),
        "rejected_nics": dict(S.rejected),
        "rejected_entries": dict(getattr(S.rejected, "entries", {})),
    }


def _network_config(init):
    ds = init.datasource
    # cloud-init's Ec2 network_config re-crawls (with ephemeral DHCP) and rewrites obj.pkl in
    # place when the cached metadata has no "network" key (what a partial crawl leaves): never
    # let a read of the config write the cache. refresh() repairs such a cache.
    md = getattr(ds, "metadata", None)
    if _is_ec2(ds) and getattr(ds, "_network_config", None) == sources.UNSET and not (isinstance(md, dict) and isinstance(md.get("network"), dict)):
        raise StaleCache("cached datasource has no network metadata (a partial crawl?); run `hotplug refresh-metadata`")
    if hb_ports.is_openstack_family(ds):
        # cloud-init's own conversion, for the NICs present (its property fails on any absent one).
        ds._network_config = hb_ports.openstack_network_config(ds)
    cfg, _src = init._find_networking_config()
    return cfg


def _is_ec2(ds):
    from cloudinit.sources.DataSourceEc2 import DataSourceEc2

    return isinstance(ds, DataSourceEc2)


_MAC_KEY_OK = re.compile(r"^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$")
_INDEX_OK = re.compile(r"^(0|[1-9][0-9]{0,3})$")
_ID_OK = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
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
    if hb_ports.is_openstack_family(ds):
        # network_data.json is optional to cloud-init's reader: a crawl where it failed must not read as "no NICs".
        got = md.get("instance-id")
        nj = getattr(ds, "network_json", None)
        if not isinstance(nj, dict) or not isinstance(nj.get("links"), list) or not nj["links"]:
            raise RefreshFailed("metadata crawl of %s is incomplete: no network_data.json links" % type(ds).__name__)
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


def refresh_network_json(ds, timeout):
    """refresh_network for the OpenStack family: network_data.json is the whole network subtree,
    one request (or one file read on a config drive). Accepted only when it lists links."""
    import time

    t0 = time.monotonic()
    nj, source = hb_ports.fetch_network_json(ds, timeout)
    if not isinstance(nj, dict) or not isinstance(nj.get("links"), list) or not nj["links"]:
        raise RefreshFailed("network_data.json from the %s lists no links" % ("config drive" if source == "drive" else "metadata service"))
    import hb_probe

    hb_probe.remember_json(nj)
    ds.network_json, S.rejected = hb_ports.sanitize_network_json(nj, getattr(ds, "network_json", None))
    hb_ports.reset_network_config(ds)
    return refreshed_reply(ds, t0)


def refreshed_reply(ds, t0):
    """refresh_network's reply once the datasource holds the new network metadata."""
    import time

    from hb_network import net_interfaces

    netcfg = _network_config(S.init)
    return {
        "supported": True,
        "duration_ms": int((time.monotonic() - t0) * 1000),
        "summary": _summary(S.init, ds),
        "network_config": netcfg,
        "interfaces": net_interfaces(netcfg),
    }



def refresh_network_ec2(ds, timeout):
    """refresh_network for the Ec2 family: crawl meta-data/network/ only."""
    import time

    from cloudinit.sources.DataSourceEc2 import AWS_TOKEN_REDACT
    from cloudinit.sources.helpers import ec2 as ec2_helper

    import hb_probe
    import hb_runtime

    crawled = getattr(ds, "_crawled_metadata", None) or {}
    version = crawled.get("_metadata_api_version") or ds.min_metadata_version
    t0 = time.monotonic()
    aws = ds.cloud_name == "aws"
    with hb_runtime.metadata_crawl():
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
    # What the server said, before the checks below may refuse (and replace) a NIC's entry.
    hb_probe.remember_ec2(_ec2_macs({"network": md}))
    S.rejected = _sanitize_nics(_ec2_macs({"network": md}), _ec2_macs(ds.metadata))
    ds.metadata["network"] = md
    if isinstance(crawled.get("meta-data"), dict) and crawled["meta-data"] is not ds.metadata:
        crawled["meta-data"]["network"] = md
    if hasattr(ds, "_network_config"):
        ds._network_config = sources.UNSET
    return refreshed_reply(ds, t0)
