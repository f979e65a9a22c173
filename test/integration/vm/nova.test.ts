/**
 * The VM tier on Nova's clouds (CHV_CLOUD=openstack or configdrive; vm.test.ts is EC2's): the
 * same Debian 12 guest and .deb, booted as a Nova guest (QEMU SMBIOS "OpenStack Nova").
 *
 *   openstack    cloud-init's OpenStackLocal crawls the VM's Nova metadata service (the lab's
 *                imds.js serving /openstack) through an ephemeral DHCP lease on the boot NIC
 *   configdrive  cloud-init's ConfigDrive reads a real `config-2` ISO 9660 disk (genisoimage),
 *                written once at boot; the metadata service still answers beside it
 *
 * NICs are hot-plugged over QMP; nothing is typed in the guest between the attach and the check,
 * except the one opt-in (configdrive.metadata_fallback) the configdrive case is about.
 *
 *   CHV_CLOUD=openstack CHV_FLAVOUR=ifupdown npx mocha --timeout 0 'dist/test/integration/vm/*.test.js'
 */
import { expect } from 'chai';
import { buildDeb, buildImage } from '../../../scripts/vm/image.js';
import { preflight } from '../../../scripts/vm/preflight.js';
import { VM_CLOUDS, runTag, vmPaths, type Flavour, type VmCloud } from '../../../scripts/vm/paths.js';
import { run as hostRun } from '../../../scripts/vm/proc.js';
import { CLIENT_ADDR } from '../../../scripts/lab/paths.js';
import { PING_PY } from '../../../scripts/lab/fabric.js';
import * as vm from '../../../scripts/vm/vm.js';
import { startRun } from '../../../scripts/results/record.js';
import { writeVmResults } from './results.js';
import { guestChecks, tableOf, type EventRecT } from './checks.js';

const NAME = process.env.CHV_NAME ?? 'vmtest';
const FLAVOUR = (process.env.CHV_FLAVOUR ?? 'ifupdown') as Flavour;
const CLOUD = (process.env.CHV_CLOUD ?? 'ec2') as VmCloud;
// A misspelt cloud would select neither suite and pass with no test run: fail instead.
if (!VM_CLOUDS.includes(CLOUD)) throw new Error(`CHV_CLOUD=${CLOUD}: not a cloud of the VM tier (${VM_CLOUDS.join(', ')})`);
const DATASOURCE = CLOUD === 'configdrive' ? 'DataSourceConfigDrive' : 'DataSourceOpenStackLocal';
const say = (m: string) => process.stderr.write(`      [vm] ${m}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const { sh, out, diagnostics, recentEvents, ipj, expectConfigured, expectDhcpClientOutlivesWorker, expectEniRendered, expectEniGone } = guestChecks(NAME);

/** Wait for the event record of `mac`'s add (or of `ifname`'s remove); null at timeout. */
async function waitEvent(match: (e: EventRecT) => boolean, tries = 120): Promise<EventRecT | null> {
  for (let i = 0; i < tries; i++) {
    const e = (await recentEvents()).find(match);
    if (e) return e;
    await sleep(1500);
  }
  return null;
}

/** Retry `expectConfigured` while the worker adds the static IPs and rules after the DHCP address. */
async function waitConfigured(n: vm.Nic): Promise<void> {
  let last: Error | undefined;
  for (let i = 0; i < 60; i++) {
    last = await expectConfigured(n).then(() => undefined, (e: Error) => e);
    if (!last) return;
    await sleep(2000);
  }
  throw new Error(`${last!.message}\n${await diagnostics()}`);
}

/** Packets the guest sent out of a NIC, counted on its tap in the cloud netns. */
async function tapRx(tap: string): Promise<number> {
  const r = await hostRun(['ip', '-n', vmPaths(NAME).netns, '-s', '-j', 'link', 'show', 'dev', tap]);
  return Number((JSON.parse(r.stdout) as { stats64: { rx: { packets: number } } }[])[0]!.stats64.rx.packets);
}

/**
 * The client (CLIENT_ADDR, on no subnet of the guest) pings every address of the NIC, and the
 * replies leave by the NIC itself: without its policy rules they would take the main table's
 * default route, out of the boot NIC.
 */
async function expectReachable(n: vm.Nic): Promise<void> {
  const got: Record<string, string> = {};
  for (const ip of [n.ip, ...(n.secondary ?? [])]) {
    const before = await tapRx(n.tap);
    // The lab's raw-socket ping (no ping binary needed), bound to the client's address.
    const r = await hostRun(['ip', 'netns', 'exec', vmPaths(NAME).netns, '/usr/bin/python3', '-c', PING_PY, ip, '3', '2000', CLIENT_ADDR]);
    const replies = (JSON.parse(r.stdout.trim().split('\n').pop()!) as { received: number }).received;
    got[ip] = `${replies} replies, ${(await tapRx(n.tap)) - before >= replies ? 'by' : 'NOT by'} ${n.ifname}`;
  }
  // The kernel's own answer for the replies' path, address by address.
  for (const ip of [n.ip, ...(n.secondary ?? [])]) {
    const via = (await ipj(`route get ${CLIENT_ADDR} from ${ip}`))[0] ?? {};
    got[`route ${ip}`] = `${via.dev}`;
  }
  expect(got, `pings from ${CLIENT_ADDR}`).to.deep.equal(Object.fromEntries([n.ip, ...(n.secondary ?? [])].flatMap((ip) => [[ip, `3 replies, by ${n.ifname}`], [`route ${ip}`, n.ifname]])));
}

interface Status {
  datasource: string | null;
  hotplug: { enabled: boolean | null; reason: string };
  metadata: { source: string | null; static: boolean };
}
const status = async () => JSON.parse(await out('hotplug status --json')) as Status;

if (CLOUD === 'openstack' || CLOUD === 'configdrive') {
  describe(`VM tier on ${CLOUD}: a Nova guest, Debian 12 + cloud-init 22.4.2 + the .deb under QEMU (${FLAVOUR})`, function () {
    this.timeout(40 * 60_000);
    this.slow(10 * 60_000);
    let nic: vm.Nic | undefined;
    const timings: Record<string, number> = {};
    const run = startRun(['test/results']);

    before(async function () {
      const why = await preflight(FLAVOUR, CLOUD);
      if (why.length) throw new Error(`the VM suite cannot run here: ${why.join('; ')}`);
      const deb = process.env.CHV_DEB ?? (await buildDeb(say));
      const { manifest, cached } = await buildImage({ deb, flavour: FLAVOUR, cloud: CLOUD, say });
      say(`image ${cached ? 'cached' : 'built'}: ${manifest.disk}`);
      const s = await vm.up({ name: NAME, image: manifest.disk.replace(/\/disk\.img$/, ''), cloud: CLOUD, say });
      timings.boot_s = +((s.bootMs ?? 0) / 1000).toFixed(1);
    });

    after(async function () {
      if (Object.keys(timings).length) console.log(`      timings: ${JSON.stringify(timings)}`);
      const file = writeVmResults(runTag(FLAVOUR, CLOUD), run, timings, this.test?.parent);
      if (file) console.log(`      results: ${file}${run.clean ? '' : ' (DIRTY tree)'}`);
      if (process.env.CHV_KEEP) {
        console.log(`      CHV_KEEP: vm ${NAME} left up; console ${vmPaths(NAME).console}`);
        return;
      }
      await vm.down({ name: NAME });
    });

    it(`boots as a Nova guest: cloud-init caches ${DATASOURCE}, the boot NIC is configured, the daemon runs`, async function () {
      expect((await out('cat /sys/class/dmi/id/product_name')).trim(), 'DMI product name').to.equal('OpenStack Nova');
      const result = JSON.parse(await out('cat /run/cloud-init/result.json')) as { v1: { datasource: string; errors: string[] } };
      expect(result.v1.datasource, 'cloud-init datasource').to.match(new RegExp(`^${DATASOURCE}\\b`));
      expect(result.v1.errors, 'cloud-init errors').to.deep.equal([]);
      // The cached object itself, as the next boot and our bridge would load it.
      expect(await out("/usr/bin/python3 -c \"import pickle; print(type(pickle.load(open('/var/lib/cloud/instance/obj.pkl','rb'))).__name__)\""), 'obj.pkl').to.equal(`${DATASOURCE}\n`);
      // cloud-init 22.4 names the cloud after the datasource (no region in Nova's metadata); the
      // cloud-id command reads it from /run/cloud-init/instance-data.json.
      expect((await out('cloud-id')).trim(), 'cloud-id').to.equal(CLOUD === 'configdrive' ? 'configdrive' : 'openstack');
      if (CLOUD === 'configdrive') expect(result.v1.datasource, 'read from the config-2 disk').to.match(/\[source=\/dev\/vd[b-z]\]/);
      const boot = (await ipj('addr show dev ens3'))[0] ?? {};
      expect(((boot.addr_info as Record<string, unknown>[] | undefined) ?? []).map((a) => a.local), 'the boot NIC').to.include('10.0.1.10');
      const st = await status();
      expect(st.datasource, JSON.stringify(st)).to.equal(DATASOURCE);
      expect(st.hotplug.enabled, st.hotplug.reason).to.equal(true);
      if (CLOUD === 'openstack') {
        expect(st.metadata).to.deep.equal({ source: 'OpenStack metadata service http://169.254.169.254', static: false });
      } else {
        expect(st.metadata.source).to.match(/^config drive \/dev\/vd[b-z]$/);
        expect(st.metadata.static).to.equal(true);
      }
      expect((await out('systemctl is-active cloud-hotplug-daemon.service || true')).trim(), 'the daemon').to.equal('active');
    });

    if (CLOUD === 'configdrive') {
      it('a hot-added NIC the drive does not list gives one clear `ignored` record at once, and status says why', async function () {
        const eni = await out('cat /etc/network/interfaces.d/50-cloud-init');
        // The metadata service lists it (as Nova's would); the drive, written at boot, cannot.
        const { nic: lost } = await vm.attach({ name: NAME, subnet: 3, wait: false, say });
        const rec = await waitEvent((e) => e.action === 'add' && e.mac === lost.mac);
        expect(rec, `no add record for ${lost.mac}\n${await diagnostics()}`).to.not.equal(null);
        timings.ignored_record_after_attach_s = +((Date.parse(rec!.time) - lost.attachedAt) / 1000).toFixed(1);
        expect(rec!.result, JSON.stringify(rec)).to.equal('ignored');
        expect(rec!.reason).to.match(/^metadata is static \(config drive \/dev\/vd[b-z]: written once at boot.*does not list MAC/).and.contain('configdrive.metadata_fallback');
        await sleep(5000);
        expect((await recentEvents()).filter((e) => e.mac === lost.mac), 'records for it').to.have.length(1);
        expect(await out('cat /etc/network/interfaces.d/50-cloud-init'), 'nothing written for it').to.equal(eni);
        expect(await out('hotplug status'), 'status').to.match(/static \(a config drive is written once at boot/);
        await vm.detach({ name: NAME, target: lost.mac, say });
        expect(await waitEvent((e) => e.action === 'remove' && e.iface === lost.ifname), 'its remove').to.not.equal(null);
      });
    }

    it(`a NIC hot-plugged over QMP${CLOUD === 'configdrive' ? ', with configdrive.metadata_fallback opted in,' : ''} gets its DHCP and static fixed IPs and policy routing; a client in another subnet reaches every address`, async function () {
      if (CLOUD === 'configdrive') {
        // The one opt-in, typed as an operator would; the daemon's bridge reads it when it starts.
        await out("mkdir -p /etc/cloud-hotplug && printf 'configdrive:\\n  metadata_fallback: true\\n' >/etc/cloud-hotplug/config.yaml && systemctl restart cloud-hotplug-daemon.service");
        const st = await status();
        expect(st.metadata, 'status after the opt-in').to.deep.equal({ source: `${st.metadata.source!.split(',')[0]}, metadata service fallback http://169.254.169.254`, static: false });
      }
      try {
        const r = await vm.attach({ name: NAME, subnet: 2, secondaryIps: 1, timeoutMs: 240_000, say });
        nic = r.nic;
        timings.daemon_attach_to_configured_s = +((r.configuredMs ?? 0) / 1000).toFixed(1);
      } catch (e) {
        throw new Error(`${(e as Error).message}\n${await diagnostics()}`);
      }
      await waitConfigured(nic!);
      // The record is written when the batch ends, after the addresses and rules checked above.
      expect(await waitEvent((e) => e.action === 'add' && e.mac === nic!.mac, 20), `the add record of ${nic!.mac}`).to.not.equal(null);
      const adds = (await recentEvents()).filter((e) => e.action === 'add' && e.mac === nic!.mac);
      expect(adds.map((e) => e.result), 'add records').to.deep.equal(['configured']);
      await expectReachable(nic!);
      if (FLAVOUR === 'ifupdown') {
        await expectEniRendered(nic!.ifname);
        await expectDhcpClientOutlivesWorker(nic!);
      }
    });

    it('hot-unplug leaves no DHCP client, no config, no rules or table for it', async function () {
      // No NIC = the hot-plug test failed (the run already fails) or was not selected: nothing to unplug.
      if (!nic) this.skip();
      const ifname = nic!.ifname;
      const t0 = Date.now();
      await vm.detach({ name: NAME, target: nic!.mac, say });
      const rec = await waitEvent((e) => e.action === 'remove' && e.iface === ifname && Date.parse(e.time) >= t0 - 1000);
      expect(rec, `no remove record for ${ifname}\n${await diagnostics()}`).to.not.equal(null);
      timings.detach_to_removed_s = +((Date.parse(rec!.time) - t0) / 1000).toFixed(1);
      expect((await out('ps -eo args | grep "^dhclient" || true')).split('\n').filter((l) => l.split(' ').includes(ifname)), 'dhclient left').to.deep.equal([]);
      if (FLAVOUR === 'ifupdown') {
        await expectEniGone(ifname);
      }
      const table = String(tableOf(nic!));
      expect((await ipj('-4 rule show')).filter((r) => r.table === table), `rules into table ${table}`).to.deep.equal([]);
      expect(await ipj(`-4 route show table ${table}`), `routes in table ${table}`).to.deep.equal([]);
      const state = JSON.parse(await out('cat /run/cloud-hotplug/routing-state.json')) as { nics: Record<string, unknown> };
      expect(Object.keys(state.nics), 'routing state still lists the NIC').to.not.include(nic!.mac);
    });

    it('the daemon under systemd: Type=notify, it handled the add and the remove, restarted after kill -9', async function () {
      // Its journal is checked for that NIC's add and remove: without the NIC (see above) there are none.
      if (!nic) this.skip();
      expect((await out('systemctl show -p Type --value cloud-hotplug-daemon.service')).trim()).to.equal('notify');
      const j = await out('journalctl -b -o cat --no-pager -u cloud-hotplug-daemon.service');
      // (configdrive: the ignored NIC had the same name; its lines are "add ignored" and a remove.)
      const mine = j.split('\n').filter((l) => / event (add|remove) /.test(l) && l.includes(`iface=${nic!.ifname}`));
      expect(mine.filter((l) => / event add configured /.test(l)), `the daemon's add line:\n${j.slice(-3000)}`).to.have.length(1);
      expect(mine.filter((l) => / event remove removed /.test(l)).length, `the daemon's remove line:\n${j.slice(-3000)}`).to.be.at.least(1);
      const pid = (await out('systemctl show -p MainPID --value cloud-hotplug-daemon.service')).trim();
      await sh(`kill -9 ${pid}`);
      let back = false;
      for (let i = 0; i < 120 && !back; i++) {
        const st = await out('systemctl show -p ActiveState,MainPID,NRestarts cloud-hotplug-daemon.service');
        back = /ActiveState=active/.test(st) && !new RegExp(`MainPID=(0|${pid})\\b`).test(st) && /NRestarts=[1-9]/.test(st);
        if (!back) await sleep(2000);
      }
      expect(back, 'systemd restarted the daemon after kill -9').to.equal(true);
    });
  });
}
