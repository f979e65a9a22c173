"""The network side of cloud-init the bridge drives: which interfaces a config names (by
cloud-init's own parse), which renderer and activator the distro would use, rendering a preview
into a scratch root, and bringing many interfaces up at once.
"""

import logging
import os
import tempfile
import time

from cloudinit.net.network_state import parse_net_config_data

# The same logger as every module of the bridge (see hotplug_bridge.open_instance).
LOG = logging.getLogger("cloud-hotplug.bridge")


def _lower(mac):
    return str(mac).lower() if mac else None


def _raw_interfaces(netcfg):
    """The config's own physical entries as [{name, mac, id}], without cloud-init's parse (the
    fallback when that parse fails: v2 names are then set-name or the key, never MAC lookups)."""
    out = []
    if netcfg.get("version") == 2:
        for key, eth in (netcfg.get("ethernets") or {}).items():
            eth = eth if isinstance(eth, dict) else {}
            out.append({"name": str(eth.get("set-name") or key), "mac": _lower((eth.get("match") or {}).get("macaddress")), "id": str(key)})
    else:
        for item in netcfg.get("config") or []:
            if isinstance(item, dict) and item.get("type") == "physical" and item.get("name"):
                out.append({"name": str(item["name"]), "mac": _lower(item.get("mac_address")), "id": str(item["name"])})
    return out


def _v2_ids(ethernets, ifaces):
    """The ethernets key each parsed interface came from. cloud-init 22.4's handle_ethernets names
    an entry by its set-name, else the system device that has its match.macaddress, else its key,
    and gives the interface that entry's macaddress; the same three tests, in the same order, find
    the entry back (the parsed interface does not keep its key)."""
    entries = [(str(k), e if isinstance(e, dict) else {}) for k, e in ethernets.items()]
    used = set()
    ids = []
    for iface in ifaces:
        name, mac = iface.get("name"), _lower(iface.get("mac_address"))
        found = None
        for key, e in entries:
            if key not in used and e.get("set-name") and str(e["set-name"]) == name:
                found = key
                break
        if found is None and mac:
            for key, e in entries:
                if key not in used and not e.get("set-name") and _lower((e.get("match") or {}).get("macaddress")) == mac:
                    found = key
                    break
        if found is None:
            found = name
        used.add(found)
        ids.append(found)
    return ids


def net_interfaces(netcfg):
    """Physical interfaces of a v1 or v2 network config as [{name, mac, id}]: `name` the device
    name cloud-init resolves (v2 set-name and MAC lookup included), `id` the config's own key
    (v2) or name (v1), `mac` lowercase or None. From cloud-init's own parse, so TS never
    re-implements its naming rules."""
    if not isinstance(netcfg, dict) or not netcfg:
        return []
    try:
        state = parse_net_config_data(netcfg)
        ifaces = [i for i in state.iter_interfaces() if i.get("type") == "physical" and i.get("name")]
    except Exception as e:  # a config cloud-init cannot parse fails at render time, not here
        LOG.warning("cannot parse the network config for its interfaces (%s); using its own names", e)
        return _raw_interfaces(netcfg)
    if netcfg.get("version") == 2:
        ids = _v2_ids(netcfg.get("ethernets") or {}, ifaces)
    else:
        ids = [str(i["name"]) for i in ifaces]
    return [{"name": str(i["name"]), "mac": _lower(i.get("mac_address")), "id": ids[n]} for n, i in enumerate(ifaces)]


def network_stack(distro):
    """{renderer, activator} the distro would use: the renderer's name as cloud-init's renderer
    list spells it (eni, netplan, networkd, sysconfig, ...) and the activator class name; None when
    there is none. Both are cloud-init's own selection (a few `which` lookups), nothing runs."""
    from cloudinit.net import renderers

    renderer = activator = None
    try:
        r = distro._get_renderer()  # the distro's choice (Arch overrides it), not renderers.select
        # Named by the list's key for the renderer's module ("network-manager" is network_manager.py)
        names = {m.__name__: n for n, m in renderers.NAME_TO_RENDERER.items()}
        renderer = names.get(type(r).__module__, type(r).__name__)
    except Exception as e:  # no renderer available: reported as None
        LOG.info("no network renderer: %s", e)
    try:
        a = distro.network_activator
        activator = a.__name__ if a else None
    except Exception as e:
        LOG.info("no network activator: %s", e)
    return {"renderer": renderer, "activator": activator}


def render_preview(distro, netcfg):
    """Render `netcfg` with the distro's renderer into a scratch root; the files it would write
    (path, new content, current content). Changes nothing on the system."""
    renderer = distro._get_renderer()
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
    return type(renderer).__name__, sorted(files, key=lambda x: x["path"])


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


def bring_up_all(activator, names):
    """({name: ok}, {name: ms}) for `names` (once each, in order). Per-interface activators run
    concurrently, at most _BRING_UP_WORKERS at a time; an all-at-once one (netplan) is called
    once. See the comment above for why."""
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
    return results, durations
