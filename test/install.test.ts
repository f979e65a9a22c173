import { expect } from 'chai';
import { mkdtemp, mkdir, writeFile, readFile, readdir, rm, lstat, readlink } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cli, ROOT } from './helpers/run.js';
import { reassertReplacement } from '../src/install/replace.js';
import { DAEMON_NICE, DAEMON_NODE_FLAGS } from '../src/daemon/supervise.js';
import { daemonUnitDeclares } from './integration/vm/checks.js';

async function tree(root: string): Promise<string[]> {
  const out: string[] = [];
  async function walk(d: string) {
    for (const e of await readdir(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else out.push(p.slice(root.length));
    }
  }
  await walk(root);
  return out.sort();
}

describe('hotplug install / uninstall (--root)', () => {
  let root: string;
  beforeEach(async () => {
    root = await mkdtemp(join(tmpdir(), 'hp-install-'));
    await mkdir(join(root, 'etc/udev/rules.d'), { recursive: true });
  });
  afterEach(() => rm(root, { recursive: true, force: true }));

  it('writes a late udev rule for net add/remove that runs the hook, and uninstall removes exactly it', async () => {
    const before = await tree(root);
    const r = await cli(['install', '--root', root]);
    expect(r.exitCode, r.stderr).to.equal(0);
    const rule = await readFile(join(root, 'etc/udev/rules.d/90-cloud-hotplug.rules'), 'utf8');
    expect(rule).to.match(/SUBSYSTEM!="net"/);
    expect(rule).to.match(/ACTION!="add\|remove"/);
    expect(rule).to.match(/RUN\+="\/bin\/sh \/.*\/bin\/hotplug-udev-hook \/.*node \/.*\/dist\/src\/cli\.js"/);
    // 90- sorts after 80-net-setup-link.rules, so names and ID_NET_DRIVER are settled.
    expect('90-cloud-hotplug.rules' > '80-net-setup-link.rules').to.equal(true);
    const u = await cli(['uninstall', '--root', root]);
    expect(u.exitCode, u.stderr).to.equal(0);
    expect(await tree(root)).to.deep.equal(before);
  });

  it("refuses while cloud-init's own hotplug rule is installed, and says how to proceed", async () => {
    const upstream = join(root, 'etc/udev/rules.d/10-cloud-init-hook-hotplug.rules');
    await writeFile(upstream, 'SUBSYSTEM=="net", RUN+="/usr/lib/cloud-init/hook-hotplug"\n');
    const r = await cli(['install', '--root', root]);
    expect(r.exitCode).to.not.equal(0);
    expect(r.stderr.trim().split('\n')).to.have.length(1);
    expect(r.stderr).to.match(/cloud-init's own hotplug hook.*--replace-cloud-init-hook/);
    expect(existsSync(join(root, 'etc/udev/rules.d/90-cloud-hotplug.rules'))).to.equal(false);
    expect(existsSync(upstream)).to.equal(true);
  });

  it('--replace-cloud-init-hook moves the upstream rule aside, masks its socket on systemd roots, and uninstall restores both', async () => {
    const upstream = join(root, 'etc/udev/rules.d/10-cloud-init-hook-hotplug.rules');
    const content = 'SUBSYSTEM=="net", RUN+="/usr/lib/cloud-init/hook-hotplug"\n';
    await writeFile(upstream, content);
    await mkdir(join(root, 'lib/systemd/system'), { recursive: true });
    await writeFile(join(root, 'lib/systemd/system/cloud-init.target'), '[Unit]\n');
    await writeFile(join(root, 'lib/systemd/systemd-networkd'), '');
    const before = await tree(root);
    const r = await cli(['install', '--root', root, '--replace-cloud-init-hook']);
    expect(r.exitCode, r.stderr).to.equal(0);
    expect(existsSync(upstream)).to.equal(false);
    // networkd would flush our rules and table routes at its next start without this.
    const dropin = await readFile(join(root, 'etc/systemd/networkd.conf.d/80-cloud-hotplug.conf'), 'utf8');
    expect(dropin).to.match(/^\[Network\]\nManageForeignRoutingPolicyRules=no\nManageForeignRoutes=no\n/m);
    expect(existsSync(join(root, 'etc/systemd/system/cloud-hotplug-replay.service'))).to.equal(true);
    const mask = join(root, 'etc/systemd/system/cloud-init-hotplugd.socket');
    expect((await lstat(mask)).isSymbolicLink()).to.equal(true);
    expect(await readlink(mask)).to.equal('/dev/null');
    const u = await cli(['uninstall', '--root', root]);
    expect(u.exitCode, u.stderr).to.equal(0);
    expect(await readFile(upstream, 'utf8')).to.equal(content);
    expect(existsSync(mask)).to.equal(false);
    expect(await tree(root)).to.deep.equal(before);
    expect(existsSync(join(root, 'etc/systemd')), 'directories install created').to.equal(false);
  });

  it("cloud-init's rule written again after install (first boot) is moved aside by the boot replay; only when install replaced it", async () => {
    const upstream = join(root, 'etc/udev/rules.d/10-cloud-init-hook-hotplug.rules');
    await mkdir(join(root, 'lib/systemd/system'), { recursive: true });
    await writeFile(join(root, 'lib/systemd/system/cloud-init.target'), '[Unit]\n');
    const before = await tree(root);
    expect((await cli(['install', '--root', root, '--replace-cloud-init-hook'])).exitCode).to.equal(0);
    expect(await readFile(join(root, 'etc/systemd/system/cloud-hotplug-replay.service'), 'utf8')).to.match(/worker --wait --boot\n/);
    // cloud-init's install_hotplug module at the instance's first boot:
    const firstBoot = 'SUBSYSTEM=="net", RUN+="/usr/lib/cloud-init/hook-hotplug" # first boot\n';
    await writeFile(upstream, firstBoot);
    expect(await reassertReplacement(root)).to.deep.equal([
      "disabled cloud-init's hotplug rule: /etc/udev/rules.d/10-cloud-init-hook-hotplug.rules -> /etc/udev/rules.d/10-cloud-init-hook-hotplug.rules.disabled-by-cloud-hotplug",
    ]);
    expect(existsSync(upstream)).to.equal(false);
    expect(await reassertReplacement(root), 'nothing to do the second time').to.deep.equal([]);
    // uninstall restores what cloud-init wrote, so the host is as cloud-init left it.
    expect((await cli(['uninstall', '--root', root])).exitCode).to.equal(0);
    expect(await readFile(upstream, 'utf8')).to.equal(firstBoot);
    await rm(upstream);
    expect(await tree(root)).to.deep.equal(before);
    // Installed without --replace-cloud-init-hook: the rule is the admin's business.
    expect((await cli(['install', '--root', root])).exitCode).to.equal(0);
    await writeFile(upstream, firstBoot);
    expect(await reassertReplacement(root)).to.deep.equal([]);
    expect(existsSync(upstream)).to.equal(true);
  });

  it('the daemon is the default; --no-daemon opts out, and a later install without options keeps the choice', async () => {
    await mkdir(join(root, 'lib/systemd/system'), { recursive: true });
    await writeFile(join(root, 'lib/systemd/system/cloud-init.target'), '[Unit]\n');
    const manifest = async () => JSON.parse(await readFile(join(root, 'var/lib/cloud-hotplug/install-manifest.json'), 'utf8')) as { daemon?: boolean };
    const install = async (...extra: string[]) => {
      const r = await cli(['install', '--root', root, ...extra]);
      expect(r.exitCode, r.stderr).to.equal(0);
      return (await manifest()).daemon;
    };
    expect(await install(), 'no options: the daemon').to.equal(true);
    const unit = await readFile(join(root, 'etc/systemd/system/cloud-hotplug-daemon.service'), 'utf8');
    expect(unit).to.match(/^ExecStart=\/\S*node .*\/dist\/src\/cli\.js daemon$/m);
    expect(unit).to.match(/^WantedBy=multi-user\.target$/m);
    // udev's programs before the daemon's batch under contention (nice in its cgroup, weight between cgroups)
    expect(unit).to.match(/^Nice=5$/m);
    expect(unit).to.match(/^CPUWeight=20$/m);
    expect(await install('--no-daemon'), '--no-daemon').to.equal(false);
    expect(await install(), 'a re-run (package upgrade) keeps the opt-out').to.equal(false);
    expect(await install('--daemon'), '--daemon opts back in').to.equal(true);
    expect(await install()).to.equal(true);
    // The package's postinst enables the unit offline (chroot, image build) unless opted out.
    const postinst = await readFile(join(ROOT, 'scripts/package/maint/postinst'), 'utf8');
    expect(postinst).to.contain(`grep -q '"daemon": false' /var/lib/cloud-hotplug/install-manifest.json`);
    expect(postinst).to.match(/systemctl enable cloud-hotplug-daemon\.service/);
  });

  it("the VM suite's daemon check expects what the unit declares: its nice, CPU weight and every node flag", () => {
    // test/integration/vm/checks.ts parses daemonUnitText; a parse that found nothing would compare nothing in the guest.
    expect(daemonUnitDeclares()).to.deep.equal({ nice: DAEMON_NICE, cpuWeight: 20, nodeFlags: DAEMON_NODE_FLAGS });
  });

  it('uninstall without an install is a clear one-line error', async () => {
    const u = await cli(['uninstall', '--root', root]);
    expect(u.exitCode).to.equal(1);
    expect(u.stderr).to.match(/^hotplug: nothing to uninstall/);
  });
});
