"""The datasource-agnostic side of the bridge's metadata: a generic per-NIC description ("ports")
built from the network config cloud-init itself derived (its NetworkState parse of v1 or v2), and
the OpenStack family's network config (metadata service and ConfigDrive, both
`network_data.json`, checked and read in hb_netdata) through cloud-init's own convert_net_json.
Nothing here knows a key of EC2's tree except the device number it adds.
"""

import copy
import ipaddress
import re
import sys

from cloudinit import sources

from hb_state import S

_MAC_OK = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
_MAX_ITEMS = 64

# network_data.json's checks and its one-request read live in hb_netdata; re-exported here.
from hb_netdata import fetch_network_json, probe, sanitize_network_json  # noqa: E402,F401


def is_openstack_family(ds):
    """A datasource whose network metadata is network_data.json (OpenStack, ConfigDrive)."""
    from cloudinit.sources.DataSourceConfigDrive import DataSourceConfigDrive
    from cloudinit.sources.DataSourceOpenStack import DataSourceOpenStack

    return isinstance(ds, (DataSourceOpenStack, DataSourceConfigDrive))


def is_config_drive(ds):
    from cloudinit.sources.DataSourceConfigDrive import DataSourceConfigDrive

    return isinstance(ds, DataSourceConfigDrive)


def reset_network_config(ds):
    """Drop the datasource's cached network config (ConfigDrive's "unset" is None, not UNSET)."""
    if is_config_drive(ds):
        ds._network_config = None
    elif hasattr(ds, "_network_config"):
        ds._network_config = sources.UNSET


# ------------------------------------------------------------------ network config


def _known_macs():
    from cloudinit import net

    return net.get_interfaces_by_mac()


def _converted(nj, known, everything):
    """cloud-init's convert_net_json of `nj`: only the links present here (their NICs named as
    the system names them), or `everything` with a placeholder name for absent ones."""
    from cloudinit.sources.helpers import openstack

    nj = copy.deepcopy(nj)
    known = dict(known)
    keep = []
    for i, link in enumerate(nj.get("links") or []):
        mac = (link.get("ethernet_mac_address") or "").lower()
        if mac and mac not in known and not link.get("name"):
            if not everything:
                continue
            known[mac] = "absent%d" % i
        keep.append(link)
    ids = {l.get("id") for l in keep}
    nj["links"] = keep
    nj["networks"] = [n for n in nj.get("networks") or [] if n.get("link") in ids]
    return openstack.convert_net_json(nj, known_macs=known)


def openstack_network_config(ds):
    """The network config of an OpenStack-family datasource for the NICs present now: what its
    own network_config property computes, except that a link whose NIC is not (yet, or any
    more) on the system is left out instead of failing the whole conversion (cloud-init 22.4
    raises "Unable to find a system nic")."""
    from cloudinit import util

    if util.is_false((getattr(ds, "ds_cfg", None) or {}).get("apply_network_config", True)):
        return None
    nj = getattr(ds, "network_json", None)
    if not isinstance(nj, dict):
        return None
    cfg = _converted(nj, _known_macs(), everything=False)
    # Nova gives every static network a default route; cloud-init renders it as `route add
    # default gw`, which on a second port adds a second main-table default route ahead of the
    # first one and sends the primary's traffic out of the wrong port. Only the first port
    # keeps it; the others get theirs in their own table (policy routing).
    links = [l for l in nj.get("links") or [] if isinstance(l, dict) and l.get("ethernet_mac_address")]
    first = links[0]["ethernet_mac_address"].lower() if links else None
    for item in (cfg or {}).get("config") or []:
        if item.get("type") != "physical" or (item.get("mac_address") or "").lower() == first:
            continue
        for s in item.get("subnets") or []:
            routes = s.get("routes") or []
            kept = [r for r in routes if not (str(r.get("netmask")) in ("0.0.0.0", "::", "0") and str(r.get("network")) in ("0.0.0.0", "::"))]
            if len(kept) != len(routes):
                s["routes"] = kept
            s.pop("gateway", None)
    return cfg


# ------------------------------------------------------------------ the generic description


def _port_from_iface(iface, index, present):
    port = {
        "mac": iface["mac_address"].lower(),
        "index": index,
        "name": iface.get("name") if present else None,
        "dhcp4": False,
        "dhcp6": False,
        "ipv4": [],
        "ipv6": [],
        "gateway4": None,
        "gateway6": None,
        "routes": [],
    }
    for s in iface.get("subnets") or []:
        t = s.get("type")
        if t in ("dhcp", "dhcp4"):
            port["dhcp4"] = True
        elif t in ("dhcp6", "ipv6_dhcpv6-stateful", "ipv6_dhcpv6-stateless", "ipv6_slaac"):
            port["dhcp6"] = True
        elif t in ("static", "static6") and s.get("address"):
            try:
                iface_addr = ipaddress.ip_interface("%s/%s" % (str(s["address"]).split("/")[0], s.get("prefix", 32 if ":" not in str(s["address"]) else 128)))
            except ValueError:
                continue
            fam = iface_addr.version
            port["ipv%d" % fam].append({"address": str(iface_addr.ip), "prefixlen": iface_addr.network.prefixlen})
        for gw_key in ("gateway",):
            gw = s.get(gw_key)
            if gw:
                try:
                    g = ipaddress.ip_address(gw)
                    port.setdefault("gateway%d" % g.version, None)
                    if not port["gateway%d" % g.version]:
                        port["gateway%d" % g.version] = str(g)
                except ValueError:
                    pass
        for r in s.get("routes") or []:
            try:
                g = ipaddress.ip_address(r.get("gateway"))
                dst = ipaddress.ip_network("%s/%s" % (r.get("network"), r.get("prefix", 0)), strict=False)
            except (ValueError, TypeError):
                continue
            if dst.prefixlen == 0:
                if not port["gateway%d" % dst.version]:
                    port["gateway%d" % dst.version] = str(g)
            elif len(port["routes"]) < _MAX_ITEMS:
                port["routes"].append({"dst": str(dst), "gateway": str(g)})
    return port


def _ports_of_config(cfg, index_of, present_macs):
    from cloudinit.net.network_state import parse_net_config_data

    if not isinstance(cfg, dict) or not cfg:
        return {}
    try:
        state = parse_net_config_data(cfg)
        ifaces = [i for i in state.iter_interfaces() if i.get("type") == "physical" and i.get("mac_address")]
    except Exception as e:
        sys.stderr.write("hotplug bridge: warn: cannot parse the network config for its ports: %s\n" % e)
        return {}
    out = {}
    for i in ifaces:
        mac = i["mac_address"].lower()
        if _MAC_OK.match(mac) and mac not in out:
            out[mac] = _port_from_iface(i, index_of(mac), mac in present_macs)
    return out


def ports(ds, netcfg):
    """MAC -> generic port description: static addresses with prefix, DHCP or not, gateways
    and routes, device index when the datasource gives one. OpenStack family: every link of
    network_data.json (present or not), index = its place among the links; others: the NICs
    of the network config, index from the EC2 device-number."""
    try:
        known = _known_macs()
    except Exception:
        known = {}
    present = set(m.lower() for m in known)
    if is_openstack_family(ds):
        nj = getattr(ds, "network_json", None)
        if not isinstance(nj, dict):
            return {}
        order = [str(l.get("ethernet_mac_address")).lower() for l in nj.get("links") or [] if isinstance(l, dict) and l.get("ethernet_mac_address")]
        try:
            cfg = _converted(nj, known, everything=True)
        except Exception as e:
            sys.stderr.write("hotplug bridge: warn: convert_net_json failed: %s\n" % e)
            return {}
        return _ports_of_config(cfg, lambda m: order.index(m) if m in order else None, present)
    md = getattr(ds, "metadata", None) or {}
    macs = ((md.get("network") or {}).get("interfaces") or {}).get("macs") if isinstance(md, dict) and isinstance(md.get("network"), dict) else None
    macs = macs if isinstance(macs, dict) else {}

    def ec2_index(mac):
        v = (macs.get(mac) or {}).get("device-number") if isinstance(macs.get(mac), dict) else None
        return int(v) if isinstance(v, str) and v.isdigit() and len(v) <= 4 else None

    return _ports_of_config(netcfg, ec2_index, present)


def metadata_static(ds):
    """True when the network metadata cannot change under a running instance (a config drive
    read without a metadata-service fallback)."""
    return bool(is_config_drive(ds) and not S.md_fallback)


def metadata_source(ds):
    if is_config_drive(ds):
        src = getattr(ds, "source", None)
        return "config drive %s%s" % (src, ", metadata service fallback %s" % S.md_fallback if S.md_fallback else "")
    if is_openstack_family(ds):
        return "OpenStack metadata service %s" % (getattr(ds, "metadata_address", None) or "?")
    return "%s metadata" % type(ds).__name__
