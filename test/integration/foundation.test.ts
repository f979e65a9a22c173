/**
 * Foundation: the real cloud-init boots in the lab, and refresh-metadata / apply / query /
 * status work against it through the Python bridge. No mocks: real IMDS, DHCP, ip state.
 */
import { expect } from 'chai';
import { chmod, chown, rename } from 'node:fs/promises';
import { statSync } from 'node:fs';
import { CLI } from '../helpers/run.js';
import { lab, hotplug, sh, ipv4Of, sha, readIn, hostPath, assertLabGone, waitFor } from './helpers.js';

const OBJ = '/var/lib/cloud/instance/obj.pkl';
const NETJSON = '/run/cloud-hotplug/network-config.json';

describe('foundation: EC2-faithful lab', function () {
  const name = 't-found';
  const hostPaths = { obj: '' };
  before(async function () {
    await lab.down({ name, quiet: true }).catch(() => {});
    await lab.up({ name, mode: 'faithful', quiet: true });
    hostPaths.obj = await hostPath(name, OBJ);
  });
  after(async function () {
    await lab.down({ name, quiet: true });
    expect(await assertLabGone(name)).to.deep.equal([]);
  });

  it('cloud-init boots to done with DataSourceEc2Local, as on a real EC2 guest', async () => {
    const st = await sh(name, ['cloud-init', 'status', '--long']);
    expect(st).to.match(/status: done/);
    const ds = await readIn(name, '/var/lib/cloud/instance/datasource');
    expect(ds).to.match(/^DataSourceEc2Local:/);
    const r = await hotplug(name, ['status', '--json']);
    expect(r.exitCode, r.stderr).to.equal(0);
    const j = JSON.parse(r.stdout);
    expect(j.cloud_init.status).to.equal('done');
    expect(j.datasource).to.equal('DataSourceEc2Local');
    expect(j.instance_id).to.match(/^i-/);
  });

  it('query: enabled with updates.network.when: [hotplug] in user-data', async () => {
    const r = await hotplug(name, ['query']);
    expect(r.exitCode, r.stderr).to.equal(0);
    expect(r.stdout.trim()).to.equal('enabled');
  });

  it('refresh-metadata picks up changed metadata: obj.pkl, instance-data.json and network-config JSON change', async () => {
    const before = await sha(name, OBJ);
    const [ip] = await lab.addIp('eth0', 1, { name });
    const r = await hotplug(name, ['refresh-metadata']);
    expect(r.exitCode, r.stderr).to.equal(0);
    expect(await sha(name, OBJ)).to.not.equal(before);
    const net = await readIn(name, NETJSON);
    expect(net, 'network-config.json').to.be.a('string');
    expect(net!).to.include(ip!);
    expect(await readIn(name, '/run/cloud-init/instance-data.json')).to.include(ip!);
    // obj.pkl is stored atomically with mode 0400, root-owned.
    const st = statSync(hostPaths.obj);
    expect(st.mode & 0o777).to.equal(0o400);
    expect(st.uid).to.equal(0);
  });

  it('apply brings a hot-attached NIC up with the address DHCP gave it', async () => {
    const nic = await lab.attach({ name, ips: 1 });
    expect(await ipv4Of(name, nic.ifname)).to.deep.equal([]);
    const r = await hotplug(name, ['apply']);
    expect(r.exitCode, r.stderr).to.equal(0);
    const got = await ipv4Of(name, nic.ifname);
    expect(got).to.include(nic.ips[0]);
    // The secondary IP from metadata is rendered by cloud-init as a static address.
    expect(got).to.include(nic.ips[1]);
    const eni = await readIn(name, '/etc/network/interfaces.d/50-cloud-init');
    expect(eni).to.include(nic.ifname);
    const last = JSON.parse((await readIn(name, '/run/cloud-hotplug/last-apply.json'))!);
    expect(last.result).to.equal('ok');
  });

  it('apply --no-refresh applies the cached config without a single metadata request', async () => {
    const before = (await lab.imdsStats({ name })).total;
    const r = await hotplug(name, ['apply', '--no-refresh']);
    expect(r.exitCode, r.stderr).to.equal(0);
    expect((await lab.imdsStats({ name })).total).to.equal(before);
  });

  it('apply --dry-run prints the config and files it would write and changes nothing', async () => {
    const nic = await lab.attach({ name });
    const files = ['/etc/network/interfaces.d/50-cloud-init', OBJ, NETJSON];
    const before = await Promise.all(files.map((f) => sha(name, f)));
    const r = await hotplug(name, ['apply', '--dry-run']);
    expect(r.exitCode, r.stderr).to.equal(0);
    expect(r.stdout).to.include(nic.mac);
    expect(r.stdout).to.match(/would write: \/etc\/network\/interfaces\.d\/50-cloud-init/);
    expect(await Promise.all(files.map((f) => sha(name, f)))).to.deep.equal(before);
    expect(await ipv4Of(name, nic.ifname)).to.deep.equal([]);
    // and the real apply then configures it
    const a = await hotplug(name, ['apply']);
    expect(a.exitCode, a.stderr).to.equal(0);
    expect(await ipv4Of(name, nic.ifname)).to.include(nic.ips[0]);
  });

  describe('bad input', () => {
    it('IMDS stopped during refresh-metadata: one-line error, obj.pkl and network-config JSON byte-identical', async () => {
      const files = [OBJ, NETJSON, '/run/cloud-init/instance-data.json'];
      const before = await Promise.all(files.map((f) => sha(name, f)));
      await lab.imdsStop({ name });
      try {
        const r = await hotplug(name, ['refresh-metadata']);
        expect(r.exitCode).to.not.equal(0);
        expect(r.stderr.trim().split('\n').filter((l) => l.startsWith('hotplug:'))).to.have.length(1);
        expect(r.stderr).to.match(/hotplug: .*metadata/);
        expect(await Promise.all(files.map((f) => sha(name, f)))).to.deep.equal(before);
      } finally {
        await lab.imdsStart({ name });
      }
    });

    it('group- or world-writable obj.pkl is refused and not loaded', async () => {
      for (const mode of [0o420, 0o402]) {
        await chmod(hostPaths.obj, mode);
        try {
          const r = await hotplug(name, ['apply', '--no-refresh']);
          expect(r.exitCode).to.not.equal(0);
          expect(r.stderr).to.match(/hotplug: refusing .*obj\.pkl: writable by group or others/);
        } finally {
          await chmod(hostPaths.obj, 0o400);
        }
      }
    });

    it('obj.pkl not owned by root is refused', async () => {
      await chown(hostPaths.obj, 1000, 1000);
      try {
        const r = await hotplug(name, ['query']);
        expect(r.exitCode).to.not.equal(0);
        expect(r.stderr).to.match(/hotplug: refusing .*obj\.pkl: owned by uid 1000, not root/);
      } finally {
        await chown(hostPaths.obj, 0, 0);
      }
    });

    it('missing obj.pkl: clear error and exit 1 (query, apply)', async () => {
      await rename(hostPaths.obj, hostPaths.obj + '.aside');
      try {
        for (const args of [['query'], ['apply']]) {
          const r = await hotplug(name, args);
          expect(r.exitCode, args.join(' ')).to.equal(1);
          expect(r.stderr.trim()).to.match(/^hotplug: no cached datasource at \/var\/lib\/cloud\/instance\/obj\.pkl/);
          expect(r.stderr).to.not.match(/\bat .*\.js:\d+/); // no stack trace
        }
      } finally {
        await rename(hostPaths.obj + '.aside', hostPaths.obj);
      }
    });

    it('not root: clear error, non-zero exit', async () => {
      const r = await lab.exec(['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, CLI, 'apply'], {
        name,
        cleanEnv: true,
        env: { PATH: '/usr/bin:/bin' },
      });
      expect(r.exitCode).to.not.equal(0);
      expect(r.stderr.trim()).to.match(/^hotplug: apply must run as root/);
    });
  });

  it('the lab is still healthy after the bad-input tests (refresh works again)', async () => {
    const r = await hotplug(name, ['refresh-metadata']);
    expect(r.exitCode, r.stderr).to.equal(0);
    await waitFor('eth0 address', async () => (await ipv4Of(name, 'eth0')).length > 0, 5000);
  });
});

describe('foundation: generic lab (platform unknown, IMDSv1 allowed), user-data without hotplug', function () {
  const name = 't-gen';
  before(async function () {
    await lab.down({ name, quiet: true }).catch(() => {});
    await lab.up({ name, mode: 'generic', hotplugUserdata: false, quiet: true });
  });
  after(async function () {
    await lab.down({ name, quiet: true });
    expect(await assertLabGone(name)).to.deep.equal([]);
  });

  it('boots with DataSourceEc2 (network stage)', async () => {
    expect(await readIn(name, '/var/lib/cloud/instance/datasource')).to.match(/^DataSourceEc2:/);
  });

  it('query: disabled without updates.network.when: [hotplug]', async () => {
    const r = await hotplug(name, ['query', '-v']);
    expect(r.exitCode, r.stderr).to.equal(0);
    expect(r.stdout).to.match(/^disabled \(hotplug not in updates\.network\.when/);
  });

  it('apply brings a hot-attached NIC up with its DHCP address', async () => {
    const nic = await lab.attach({ name });
    const r = await hotplug(name, ['apply']);
    expect(r.exitCode, r.stderr).to.equal(0);
    expect(await ipv4Of(name, nic.ifname)).to.include(nic.ips[0]);
  });
});
