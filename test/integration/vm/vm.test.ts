/**
 * The real-VM tier (slow under TCG: its timings are in test/results/vm-<flavour>-latest.json and
 * docs/vm.md; not in the default test globs).
 *
 * Debian 12 with Debian's own cloud-init 22.4.2, nodejs 18, ifupdown + dhclient, and the
 * project's .deb installed, boots under QEMU with an Ec2 SMBIOS identity against the lab's
 * metadata service; NICs are hot-plugged over QMP exactly as a hypervisor would. Nothing is
 * typed in the guest between the attach and the check: udev → hook → worker must do it all.
 * One boot per run: a NIC hot-plugged while cloud-init is still booting, a second one after
 * boot (DHCP address, secondary IPs, policy routing), its hot-unplug, then the package purged.
 *
 *   npm run test:vm          (as root; installs its packages (scripts/setup-vm.sh), builds the .deb and the image, cached)
 *   CHV_KEEP=1 …             leave the VM up afterwards (then: node dist/scripts/vm/cli.js -n vmtest down)
 *   CHV_DEB=path.deb …       use this .deb instead of running scripts/package.sh
 *   CHV_FLAVOUR=netplan …    netplan.io + systemd-networkd instead of ifupdown + dhclient
 *   CHV_FLAVOUR=networkd …   cloud-init's networkd renderer + activator (systemd-networkd, no netplan)
 *   CHV_FLAVOUR=nm …         Debian's network-manager, cloud-init's network-manager renderer + activator
 *   CHV_CLOUD=openstack|configdrive …   a Nova guest instead: nova.test.ts runs, this file does not
 */
import { expect } from 'chai';
import { buildDeb, buildImage } from '../../../scripts/vm/image.js';
import { preflight } from '../../../scripts/vm/preflight.js';
import { vmPaths, type Flavour } from '../../../scripts/vm/paths.js';
import * as vm from '../../../scripts/vm/vm.js';
import { startRun } from '../../../scripts/results/record.js';
import { writeVmResults } from './results.js';
import { guestChecks, tableOf, type Row } from './checks.js';

const NAME = process.env.CHV_NAME ?? 'vmtest';
/** ifupdown (Debian's default), netplan (netplan.io → systemd-networkd), networkd (cloud-init's networkd renderer) or nm (NetworkManager). */
const FLAVOUR = (process.env.CHV_FLAVOUR ?? 'ifupdown') as Flavour;
const say = (m: string) => process.stderr.write(`      [vm] ${m}\n`);
/** This suite is EC2's (the default cloud); the Nova clouds have nova.test.ts. */
const EC2 = (process.env.CHV_CLOUD ?? 'ec2') === 'ec2';

const { sh, out, diagnostics, recentEvents, ipj, addressRules, expectConfigured, expectDhcpClientOutlivesWorker, expectEniRendered, expectEniGone, expectDaemonPriority } = guestChecks(NAME);

/** `systemctl restart systemd-networkd` (what netplan apply and upgrades do), until it has configured `ifname` again. */
async function restartNetworkd(ifname: string): Promise<void> {
  await out('systemctl restart systemd-networkd');
  let st = '';
  for (let i = 0; i < 30 && !/State: routable/.test(st); i++) {
    await new Promise((r) => setTimeout(r, 2000));
    st = await out(`networkctl status ${ifname} --no-pager || true`);
  }
  expect(st, `networkd configured ${ifname} again after its restart`).to.match(/State: routable/);
}

/** networkd flushes "foreign" rules when it starts (netplan apply, upgrades); our drop-in keeps them. */
async function expectRulesKeptOverNetworkdRestart(nics: vm.Nic[]): Promise<void> {
  await restartNetworkd(nics[0]!.ifname);
  for (const n of nics) {
    const rules = await addressRules(String(tableOf(n)));
    expect(rules.map((r) => r.src).sort(), `rules into table ${tableOf(n)} after networkd restarted`).to.deep.equal([n.ip, ...(n.secondary ?? [])].sort());
  }
}

/** networkd runs the NIC's DHCP (netplan and networkd flavours). */
const NETWORKD = FLAVOUR === 'netplan' || FLAVOUR === 'networkd';

/** `systemctl restart NetworkManager`, until the NIC has cloud-init's profile active again. */
async function restartNetworkManager(ifname: string): Promise<void> {
  await out('systemctl restart NetworkManager');
  let st = '';
  for (let i = 0; i < 30 && !/^GENERAL.STATE:100\b/m.test(st); i++) {
    await new Promise((r) => setTimeout(r, 2000));
    st = await out(`nmcli -t -f GENERAL.STATE,GENERAL.CONNECTION device show ${ifname} || true`);
  }
  expect(st, `NetworkManager activated ${ifname} again after its restart`).to.match(/^GENERAL.STATE:100\b/m).and.match(new RegExp(`^GENERAL.CONNECTION:cloud-init ${ifname}$`, 'm'));
}

/** The flavour's own restart of its network stack (what upgrades and `netplan apply` do). */
async function restartStack(ifname: string): Promise<void> {
  if (NETWORKD) await restartNetworkd(ifname);
  else if (FLAVOUR === 'nm') await restartNetworkManager(ifname);
}

/** NetworkManager: exactly cloud-init's profile active on the NIC, and no profile of NM's own for it. */
async function expectOneNmProfile(ifname: string): Promise<void> {
  const act = (await out('nmcli -t -f NAME,DEVICE connection show --active')).split('\n').filter((l) => l.endsWith(`:${ifname}`));
  expect(act, `active profiles on ${ifname}`).to.deep.equal([`cloud-init ${ifname}:${ifname}`]);
  expect((await out('nmcli -t -f NAME connection show')).split('\n').filter((l) => l.startsWith('Wired connection')), "NM's automatic profiles").to.deep.equal([]);
}

if (EC2) describe(`VM tier: Debian 12 + cloud-init 22.4.2 + the .deb under QEMU (${FLAVOUR})`, function () {
  this.timeout(40 * 60_000);
  this.slow(10 * 60_000);
  /** Hot-plugged while cloud-init was booting; configured by the boot replay. */
  let early: vm.Nic | undefined;
  let earlyWhileBooting = false;
  /** Hot-plugged after boot, then hot-unplugged. */
  let nic: vm.Nic | undefined;
  const timings: Record<string, number> = {};
  /** The tree the run started from (test/results/ itself not counted). */
  const run = startRun(['test/results']);

  before(async function () {
    // Never a skip: a host that cannot run the tier fails the run, with the reason on one line.
    const why = await preflight(FLAVOUR);
    if (why.length) throw new Error(`the VM suite cannot run here: ${why.join('; ')}`);
    const deb = process.env.CHV_DEB ?? (await buildDeb(say));
    const t0 = Date.now();
    const { manifest, cached } = await buildImage({ deb, flavour: FLAVOUR, say });
    say(`image ${cached ? 'cached' : `built in ${((Date.now() - t0) / 1000).toFixed(0)} s`}: ${manifest.disk}`);
    await vm.up({ name: NAME, image: manifest.disk.replace(/\/disk\.img$/, ''), wait: false, say });
    // The network stage: init-local has already crawled metadata and rendered the boot config
    // without this NIC, and the boot is far from finished.
    const atInit = await vm.waitConsole(/running 'init' at/, { name: NAME, timeoutMs: 900_000 });
    if (atInit) {
      const r = await vm.attach({ name: NAME, subnet: 3, secondaryIps: 1, wait: false, say });
      early = r.nic;
      earlyWhileBooting = !(await vm.bootFinished(NAME));
    }
    const s = await vm.waitUp({ name: NAME, say });
    timings.boot_s = +((s.bootMs ?? 0) / 1000).toFixed(1);
  });

  after(async function () {
    if (Object.keys(timings).length) console.log(`      timings: ${JSON.stringify(timings)}`);
    const file = writeVmResults(FLAVOUR, run, timings, this.test?.parent);
    if (file) console.log(`      results: ${file}${run.clean ? '' : ' (DIRTY tree)'}`);
    if (process.env.CHV_KEEP) {
      console.log(`      CHV_KEEP: vm ${NAME} left up; console ${vmPaths(NAME).console}`);
      return;
    }
    await vm.down({ name: NAME });
  });

  it('boots through the Ec2 datasource with the .deb installed, its unit active, cloud-init’s hook kept aside', async function () {
    const result = JSON.parse(await out('cat /run/cloud-init/result.json')) as { v1: { datasource: string; errors: string[] } };
    expect(result.v1.datasource, 'cloud-init datasource').to.match(/DataSourceEc2/);
    expect(result.v1.errors, 'cloud-init errors').to.deep.equal([]);
    expect(await out("dpkg-query -W -f='${Status}' cloud-hotplug")).to.equal('install ok installed');
    expect((await sh('test -f /etc/udev/rules.d/90-cloud-hotplug.rules')).exitCode, 'our udev rule').to.equal(0);
    expect((await out('systemctl is-enabled cloud-hotplug-replay.service || true')).trim()).to.equal('enabled');
    // The warm path is the default: the package's postinst enabled the daemon (offline, in the image build).
    expect((await out('systemctl is-enabled cloud-hotplug-daemon.service || true')).trim(), 'the daemon, enabled by the package').to.equal('enabled');
    expect((await out('systemctl is-enabled cloud-init-hotplugd.socket || true')).trim(), "cloud-init's hotplug socket").to.equal('masked');
    // The replay is a oneshot after cloud-final (RemainAfterExit): active once it has run.
    let st = '';
    for (let i = 0; i < 90; i++) {
      st = await out('systemctl show -p ActiveState,Result cloud-hotplug-replay.service');
      if (!/ActiveState=activating/.test(st)) break;
      await new Promise((r) => setTimeout(r, 2000));
    }
    expect(st, 'cloud-hotplug-replay.service').to.contain('Result=success');
    expect((await out('systemctl is-active cloud-hotplug-replay.service || true')).trim(), 'replay unit').to.equal('active');
    // cloud-init's install_hotplug writes its rule at the first boot, after the package was
    // installed; the replay must have moved it aside again.
    expect((await sh('test -e /etc/udev/rules.d/10-cloud-init-hook-hotplug.rules')).exitCode, "cloud-init's own hotplug rule is active").to.not.equal(0);
    const moved = await out("journalctl -b -o cat --no-pager -u cloud-hotplug-replay.service | grep -c \"disabled cloud-init's hotplug rule\" || true");
    say(`replay moved cloud-init's rule aside: ${moved.trim() !== '0' ? 'yes' : 'no (it was not rewritten)'}`);
    const status = JSON.parse(await out('hotplug status --json')) as { datasource: string | null; hotplug: { enabled: boolean | null; reason: string } };
    expect(status.datasource, `hotplug status: ${JSON.stringify(status.hotplug)}`).to.match(/Ec2/);
    expect(status.hotplug.enabled, `hotplug status: ${status.hotplug.reason}`).to.equal(true);
  });

  it('a NIC hot-plugged while cloud-init is still booting is configured once boot finishes', async function () {
    expect(early, "the console never showed cloud-init's network stage").to.not.equal(undefined);
    expect(earlyWhileBooting, 'device_add landed after cloud-init had finished: the case was not exercised').to.equal(true);
    const got = await vm.waitGuestAddress(vmPaths(NAME), early!.mac, early!.ip, 240_000);
    if (!got) throw new Error(`${early!.mac} never got ${early!.ip}\n${await diagnostics()}`);
    early!.ifname = got;
    try {
      await expectConfigured(early!);
    } catch (e) {
      throw new Error(`${(e as Error).message}\n${await diagnostics()}`);
    }
    const finished = JSON.parse(await out('cat /run/cloud-init/status.json')) as { v1: Record<string, { finished: number | null }> };
    const finishedMs = (finished.v1['modules-final']?.finished ?? 0) * 1000;
    const adds = (await recentEvents()).filter((e) => e.action === 'add' && e.mac === early!.mac);
    expect(adds.map((e) => e.result), `add events for ${got}`).to.deep.equal(['configured']);
    const doneMs = Date.parse(adds[0]!.time);
    const queuedMs = doneMs - adds[0]!.duration_ms;
    timings.early_nic_queued_before_boot_end_s = +((finishedMs - queuedMs) / 1000).toFixed(1);
    timings.early_nic_configured_after_boot_end_s = +((doneMs - finishedMs) / 1000).toFixed(1);
    expect(queuedMs, 'the kernel event came before cloud-init finished').to.be.lessThan(finishedMs);
    expect(doneMs, 'handled after cloud-init finished').to.be.greaterThan(finishedMs);
    if (FLAVOUR === 'ifupdown') await expectDhcpClientOutlivesWorker(early!);
  });

  it('a NIC hot-plugged over QMP gets its DHCP address, secondary IPs and policy routing with no command typed', async function () {
    try {
      const r = await vm.attach({ name: NAME, subnet: 2, secondaryIps: 2, timeoutMs: 240_000, say });
      nic = r.nic;
      timings.attach_to_configured_s = +((r.configuredMs ?? 0) / 1000).toFixed(1);
    } catch (e) {
      throw new Error(`${(e as Error).message}\n${await diagnostics()}`);
    }
    // The DHCP address comes first; secondary IPs and rules follow in the same worker run.
    let last: Error | undefined;
    for (let i = 0; i < 60; i++) {
      last = await expectConfigured(nic!).then(() => undefined, (e: Error) => e);
      if (!last) break;
      await new Promise((r) => setTimeout(r, 2000));
    }
    if (last) throw new Error(`${last.message}\n${await diagnostics()}`);
    // Bringing up the new NIC (ifup; netplan apply restarting networkd) left the first one's intact.
    if (early) await expectConfigured(early);
    // The kernel's own answer: a reply from a secondary IP leaves by its NIC, not the primary.
    const via = (await ipj(`route get 10.0.9.9 from ${nic!.secondary![1]}`))[0];
    expect(via, 'route for traffic from a secondary IP').to.include({ dev: nic!.ifname, gateway: '10.0.2.1' });
    if (FLAVOUR === 'netplan') {
      expect(await out('cat /etc/netplan/50-cloud-init.yaml'), 'rendered netplan config').to.contain(nic!.mac);
      expect(await out(`networkctl status ${nic!.ifname} --no-pager || true`), 'networkd manages it').to.match(/State: routable|configured/);
      // (Table routes that go with a re-acquired address need the daemon: below.)
      await expectRulesKeptOverNetworkdRestart([nic!, ...(early ? [early] : [])]);
    } else if (FLAVOUR === 'networkd') {
      expect(await out(`cat /etc/systemd/network/10-cloud-init-${nic!.ifname}.network`), 'rendered .network').to.match(/DHCP=ipv4/);
      expect(await out(`networkctl status ${nic!.ifname} --no-pager || true`), 'networkd manages it').to.match(/State: routable|configured/);
      await expectRulesKeptOverNetworkdRestart([nic!, ...(early ? [early] : [])]);
    } else if (FLAVOUR === 'nm') {
      expect(await out(`cat /etc/NetworkManager/system-connections/cloud-init-${nic!.ifname}.nmconnection`), 'rendered keyfile').to.match(/method=auto/);
      await expectOneNmProfile(nic!.ifname);
      if (early) await expectOneNmProfile(early.ifname);
      // NM 1.42 leaves foreign rules and routes alone on its restart (checked in the lab too).
      await restartNetworkManager(nic!.ifname);
      for (const n of [nic!, ...(early ? [early] : [])]) await expectConfigured(n);
    } else {
      await expectEniRendered(nic!.ifname);
      await expectDhcpClientOutlivesWorker(nic!);
    }
  });

  it('hot-unplug leaves no DHCP client, no config, no activator state, no rules or table for it', async function () {
    // No NIC = the hot-plug test failed (the run already fails) or was not selected: nothing to unplug.
    if (!nic) this.skip();
    const ifname = nic!.ifname;
    const t0 = Date.now();
    await vm.detach({ name: NAME, target: nic!.mac, say });
    let done = false;
    for (let i = 0; i < 120 && !done; i++) {
      done = (await recentEvents()).some((e) => e.action === 'remove' && e.iface === ifname);
      if (!done) await new Promise((r) => setTimeout(r, 1500));
    }
    // a remove never recorded has no time (the check below fails and says so)
    if (done) timings.detach_to_removed_s = +((Date.now() - t0) / 1000).toFixed(1);
    expect(done, `no remove event recorded for ${ifname}\n${await diagnostics()}`).to.equal(true);
    const dh = await out('ps -eo args | grep "^dhclient" || true');
    expect(dh.split('\n').filter((l) => l.split(' ').includes(ifname)), 'dhclient left for the removed NIC').to.deep.equal([]);
    if (FLAVOUR === 'netplan') {
      expect(await out('cat /etc/netplan/50-cloud-init.yaml'), 'NIC left in netplan config').to.not.contain(nic!.mac);
      expect(await out(`ls /run/systemd/network/ | grep -F -- "-${ifname}." || true`), 'networkd config left').to.equal('');
    } else if (FLAVOUR === 'networkd') {
      expect(await out(`ls /etc/systemd/network/ /run/systemd/network/ | grep -F -- "-${ifname}." || true`), 'networkd config left').to.equal('');
    } else if (FLAVOUR === 'nm') {
      expect((await sh(`test -e /etc/NetworkManager/system-connections/cloud-init-${ifname}.nmconnection`)).exitCode, 'keyfile left').to.not.equal(0);
      expect((await out('nmcli -t -f NAME connection show')).split('\n').filter((l) => l.includes(ifname)), 'NM profile left').to.deep.equal([]);
      expect(await out(`ls /var/lib/NetworkManager/ | grep -F -- "-${ifname}.lease" || true`), 'NM lease left').to.equal('');
    } else {
      await expectEniGone(ifname);
      expect((await sh(`test -e /run/dhclient.${ifname}.pid`)).exitCode, 'dhclient pid file left').to.not.equal(0);
    }
    const table = String(tableOf(nic!));
    expect((await ipj('-4 rule show')).filter((r) => r.table === table), `rules into table ${table}`).to.deep.equal([]);
    expect(await ipj(`-4 route show table ${table}`), `routes in table ${table}`).to.deep.equal([]);
    const state = JSON.parse(await out('cat /run/cloud-hotplug/routing-state.json')) as { nics: Record<string, unknown> };
    expect(Object.keys(state.nics), 'routing state still lists the NIC').to.not.include(nic!.mac);
    if (early) await expectConfigured(early);
  });

  it('the journal has one line per event, with its duration', async function () {
    // As above: without the hot-plugged NIC there are no events of it to look for.
    if (!nic) this.skip();
    // The daemon (the default) handles events; a one-shot worker only those it missed (not running yet).
    const j = await out('journalctl -b -o cat --no-pager -u cloud-hotplug-daemon.service -u cloud-hotplug-worker.service -u cloud-hotplug-replay.service');
    const lines = (ifname: string) => j.split('\n').filter((l) => / event (add|remove) /.test(l) && l.includes(`iface=${ifname}`));
    const mine = lines(nic!.ifname);
    expect(mine.filter((l) => / event add configured /.test(l)), `add lines:\n${j}`).to.have.length(1);
    expect(mine.filter((l) => / event remove removed /.test(l)), `remove lines:\n${j}`).to.have.length(1);
    if (early) expect(lines(early.ifname).filter((l) => / event add configured /.test(l)), `add lines for the NIC from boot:\n${j}`).to.have.length(1);
    for (const l of [...mine, ...(early ? lines(early.ifname) : [])]) expect(l).to.match(/duration_ms=\d+/);
  });

  it('the daemon under systemd: ready (Type=notify), at its unit’s priority and node flags, handles a hot-plug and its unplug, restarted after kill -9', async function () {
    // Enabled by the package (no command typed): it has been running since boot.
    expect((await out('systemctl is-enabled cloud-hotplug-daemon.service || true')).trim(), 'daemon enabled').to.equal('enabled');
    expect((await out('systemctl is-active cloud-hotplug-daemon.service || true')).trim(), `daemon\n${await out('journalctl -b -o cat --no-pager -u cloud-hotplug-daemon.service | tail -n 30')}`).to.equal('active');
    // Nice=, CPUWeight= and the node flags, on the process itself (again below, after its restart).
    await expectDaemonPriority();
    const dj = () => out('journalctl -b -o cat --no-pager -u cloud-hotplug-daemon.service');
    // Earlier tests' NICs (handled by this same daemon) may have had the same name: count anew.
    const addLines = (journal: string, ifname: string) => journal.split('\n').filter((l) => / event add configured /.test(l) && l.includes(`iface=${ifname}`)).length;
    const journalBefore = await dj();
    let c: vm.Nic | undefined;
    try {
      c = (await vm.attach({ name: NAME, subnet: 4, secondaryIps: 1, timeoutMs: 240_000, say })).nic;
      timings.daemon_attach_to_configured_s = +(((Date.now() - c.attachedAt) / 1000).toFixed(1));
      let last: Error | undefined;
      for (let i = 0; i < 60; i++) {
        last = await expectConfigured(c).then(() => undefined, (e: Error) => e);
        if (!last) break;
        await new Promise((r) => setTimeout(r, 2000));
      }
      if (last) throw last;
    } catch (e) {
      throw new Error(`${(e as Error).message}\n${await out('journalctl -b -o cat --no-pager -u cloud-hotplug-daemon.service | tail -n 30')}`);
    }
    expect(addLines(await dj(), c.ifname) - addLines(journalBefore, c.ifname), 'the daemon handled the add').to.equal(1);
    if (FLAVOUR === 'ifupdown') await expectDhcpClientOutlivesWorker(c);
    // kill -9: systemd restarts it (Restart=on-failure), and it comes back ready.
    const pid = (await out('systemctl show -p MainPID --value cloud-hotplug-daemon.service')).trim();
    await sh(`kill -9 ${pid}`);
    let back = false;
    for (let i = 0; i < 120 && !back; i++) {
      const st = await out('systemctl show -p ActiveState,MainPID,NRestarts cloud-hotplug-daemon.service');
      back = /ActiveState=active/.test(st) && !new RegExp(`MainPID=(0|${pid})\\b`).test(st) && /NRestarts=[1-9]/.test(st);
      if (!back) await new Promise((r) => setTimeout(r, 2000));
    }
    expect(back, 'systemd restarted the daemon after kill -9').to.equal(true);
    await expectDaemonPriority();
    if (FLAVOUR === 'ifupdown') await expectDhcpClientOutlivesWorker(c); // KillMode=process + its scope
    if (FLAVOUR !== 'ifupdown') {
      // networkd's restart drops the table routes with the addresses it re-acquires, silently;
      // the daemon's routing watch puts them back with no event. (NetworkManager keeps them.)
      await restartStack(c.ifname);
      let last: Error | undefined;
      for (let i = 0; i < 30; i++) {
        last = await Promise.all([c, ...(early ? [early] : [])].map(expectConfigured)).then(() => undefined, (e: Error) => e);
        if (!last) break;
        await new Promise((r) => setTimeout(r, 2000));
      }
      if (last) throw new Error(`after the network stack restarted: ${last.message}\n${(await dj()).split('\n').slice(-20).join('\n')}`);
    }
    // The daemon runs from boot (the default), so earlier unplugs of the same name are in its
    // journal too: wait for one more remove line than before this detach.
    const removeLines = async () => (await dj()).split('\n').filter((l) => / event remove removed /.test(l) && l.includes(`iface=${c.ifname}`)).length;
    const removesBefore = await removeLines();
    await vm.detach({ name: NAME, target: c.mac, say });
    let removed = false;
    for (let i = 0; i < 120 && !removed; i++) {
      removed = (await removeLines()) > removesBefore;
      if (!removed) await new Promise((r) => setTimeout(r, 1500));
    }
    expect(removed, `the daemon recorded no remove for ${c.ifname}\n${(await dj()).split('\n').slice(-30).join('\n')}`).to.equal(true);
    const left = (await ipj('-4 rule show')).filter((r) => r.table === String(tableOf(c)));
    const why = left.length ? `\n${(await dj()).split('\n').slice(-30).join('\n')}\n--- routing state\n${await out('cat /run/cloud-hotplug/routing-state.json 2>&1; true')}` : '';
    expect(left, `rules left${why}`).to.deep.equal([]);
  });

  it('purging the package leaves no rule, unit, file or process of it, and gives cloud-init its hook back', async function () {
    const files = (await out('dpkg-query -L cloud-hotplug')).split('\n').filter(Boolean);
    const tp = Date.now();
    const r = await sh('DEBIAN_FRONTEND=noninteractive dpkg --purge cloud-hotplug 2>&1', 300_000);
    expect(r.exitCode, `dpkg --purge: ${r.stdout}`).to.equal(0);
    timings.purge_s = +((Date.now() - tp) / 1000).toFixed(1);
    // Every file the package shipped (directories shared with other packages stay).
    const left = await out(`for f in ${files.map((f) => `'${f.replace(/'/g, '')}'`).join(' ')}; do [ -e "$f" ] && [ ! -d "$f" ] && echo "$f"; done; true`);
    expect(left.trim(), 'files of the package left').to.equal('');
    // Anything else of ours, anywhere: written by install, at run time, or by postinst.
    const named = await out("find / -xdev \\( -path /proc -o -path /sys \\) -prune -o \\( -name '*cloud-hotplug*' -o -name 'hotplug-udev-hook' \\) -print 2>/dev/null; find /run -name '*cloud-hotplug*' 2>/dev/null; true");
    // The VM's own cloud-init settings (scripts/vm/image.ts) are the test bed's, not the package's.
    const ours = named.split('\n').filter((l) => l && l !== '/etc/cloud/cloud.cfg.d/95-cloud-hotplug-vm.cfg');
    expect(ours, 'files named after the project left').to.deep.equal([]);
    expect((await out("systemctl list-unit-files --no-legend 'cloud-hotplug*' || true")).trim(), 'unit files left').to.equal('');
    expect((await out("systemctl list-units --all --no-legend 'cloud-hotplug*' || true")).trim(), 'units loaded').to.equal('');
    expect((await out('systemctl is-enabled cloud-init-hotplugd.socket || true')).trim(), "cloud-init's socket still masked").to.not.equal('masked');
    expect((await sh('test -e /etc/udev/rules.d/10-cloud-init-hook-hotplug.rules')).exitCode, "cloud-init's hotplug rule restored").to.equal(0);
    for (const fam of ['-4', '-6']) {
      expect((await ipj(`${fam} rule show`)).filter((x) => x.protocol === '199'), `${fam} policy rules left`).to.deep.equal([]);
      expect((await ipj(`${fam} route show table all`)).filter((x) => x.protocol === '199'), `${fam} policy routes left`).to.deep.equal([]);
    }
    expect((await out("ps -eo args | grep -E 'cloud-hotplug|cli\\.js (worker|daemon)' | grep -v grep || true")).trim(), 'processes left').to.equal('');
    // The NIC from boot keeps working: its address is cloud-init's configuration, not ours.
    if (early) {
      const link = (await ipj(`addr show dev ${early.ifname}`))[0] ?? {};
      expect(((link.addr_info as Row[] | undefined) ?? []).map((a) => a.local), 'the NIC from boot lost its address').to.include(early.ip);
    }
  });
});
