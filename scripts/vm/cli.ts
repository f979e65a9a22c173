#!/usr/bin/env node
/**
 * `vm`: the real-VM tier. node dist/scripts/vm/cli.js <command> (as root).
 *
 *   build                 .deb (scripts/package.sh) + cached Debian 12 image with it installed
 *   up                    boot the image under QEMU in its own network namespace, wait for cloud-init
 *   attach / detach       hot-plug / unplug a NIC over QMP (+ metadata + DHCP lease)
 *   exec -- CMD ...       run a command in the guest (qemu-guest-agent)
 *   status, console       what runs; the serial console log
 *   down                  kill QEMU, dnsmasq, the metadata service by PID; delete the namespace
 */
import { Command } from 'commander';
import { readFile } from 'node:fs/promises';
import { UserError, oneLine } from '../../src/util/errors.js';
import { buildDeb, buildImage, ensureBase } from './image.js';
import { FLAVOURS, VM_CLOUDS, vmPaths, type Flavour, type VmCloud } from './paths.js';
import * as vm from './vm.js';

const say = (m: string) => process.stderr.write(`vm: ${m}\n`);

function requireRoot(): void {
  if (process.getuid?.() !== 0) throw new UserError('vm commands must run as root (network namespaces, taps, chroot)');
}

function act<A extends unknown[]>(fn: (...a: A) => Promise<number | void>) {
  return async (...a: A) => {
    try {
      requireRoot();
      const rc = await fn(...a);
      process.exitCode = typeof rc === 'number' ? rc : 0;
    } catch (e) {
      process.stderr.write(`vm: error: ${e instanceof UserError ? e.message : oneLine(e)}\n`);
      if (!(e instanceof UserError) && process.env.CHV_DEBUG) process.stderr.write(`${(e as Error).stack}\n`);
      process.exitCode = e instanceof UserError ? e.code : 1;
    }
  };
}

const flavourOf = (f: string): Flavour => {
  if (!FLAVOURS.includes(f as Flavour)) throw new UserError(`unknown flavour ${f} (one of ${FLAVOURS.join(', ')})`);
  return f as Flavour;
};

const cloudOf = (c: string): VmCloud => {
  if (!VM_CLOUDS.includes(c as VmCloud)) throw new UserError(`unknown cloud ${c} (one of ${VM_CLOUDS.join(', ')})`);
  return c as VmCloud;
};
const CLOUD_HELP = `cloud (${VM_CLOUDS.join(', ')}): its datasource in the image, its identity and metadata at boot`;

const program = new Command();
program.name('vm').description('cloud-hotplug real-VM tier: Debian 12 + cloud-init under QEMU, NICs hot-plugged over QMP').option('-n, --name <name>', 'vm name (default "vm", or $CHV_NAME)');
const name = () => program.opts<{ name?: string }>().name;

program
  .command('build')
  .description('build the .deb and a cached Debian 12 image with it installed (mmdebstrap, mkfs.ext4 -d)')
  .option('--deb <file>', 'use this .deb instead of running scripts/package.sh')
  .option('--flavour <f>', `network stack (${FLAVOURS.join(', ')})`, 'ifupdown')
  .option('--cloud <c>', CLOUD_HELP, 'ec2')
  .option('--rebuild', 'rebuild the image even if cached')
  .option('--rebuild-base', 'rebuild the mmdebstrap base too')
  .option('--base-only', 'only build (or show) the cached base root fs tarball')
  .action(
    act(async (o: { deb?: string; flavour: string; cloud: string; rebuild?: boolean; rebuildBase?: boolean; baseOnly?: boolean }) => {
      if (o.baseOnly) {
        const [path, ms] = await ensureBase(say, o.rebuildBase, flavourOf(o.flavour));
        say(ms === null ? `base cached: ${path}` : `base built in ${(ms / 1000).toFixed(0)} s: ${path}`);
        process.stdout.write(path + '\n');
        return;
      }
      const cloud = cloudOf(o.cloud);
      const deb = o.deb ?? (await buildDeb(say));
      const { manifest, cached } = await buildImage({ deb, flavour: flavourOf(o.flavour), cloud, rebuild: o.rebuild, rebuildBase: o.rebuildBase, say });
      say(
        cached
          ? `image cached: ${manifest.disk}`
          : `image built in ${(manifest.buildMs / 1000).toFixed(0)} s${manifest.baseBuildMs ? ` (base ${(manifest.baseBuildMs / 1000).toFixed(0)} s)` : ''}: ${manifest.disk}`,
      );
      say(Object.entries(manifest.packages).map(([k, v]) => `${k} ${v}`).join(', '));
      process.stdout.write(JSON.stringify(manifest, null, 2) + '\n');
    }),
  );

program
  .command('up')
  .description('boot the VM (QEMU, TCG by default) and wait until cloud-init finished and the guest agent answers')
  .option('--image <dir>', 'image dir from "vm build" (default: the newest of the flavour)')
  .option('--flavour <f>', 'flavour of the default image', 'ifupdown')
  .option('--cloud <c>', CLOUD_HELP, 'ec2')
  .option('--mem <MiB>', 'guest memory', '1024')
  .option('--accel <a>', 'tcg or kvm (kvm needs working /dev/kvm; nested virt usually is not)', 'tcg')
  .option('--no-wait', 'return once QEMU started')
  .option('--timeout <s>', 'boot timeout', '900')
  .action(
    act(async (o: { image?: string; flavour: string; cloud: string; mem: string; accel: string; wait: boolean; timeout: string }) => {
      if (o.accel !== 'tcg' && o.accel !== 'kvm') throw new UserError('--accel is tcg or kvm');
      const s = await vm.up({ name: name(), image: o.image, flavour: flavourOf(o.flavour), cloud: cloudOf(o.cloud), memMiB: Number(o.mem), accel: o.accel, wait: o.wait, timeoutMs: Number(o.timeout) * 1000, say });
      process.stdout.write(JSON.stringify(await vm.status(s.name), null, 2) + '\n');
    }),
  );

program
  .command('attach')
  .description('hot-plug a NIC: metadata first, a DHCP lease, then QMP netdev_add + device_add; wait for the guest to configure it')
  .option('--subnet <k>', 'subnet 1-4 (10.0.k.0/24)', '2')
  .option('--no-metadata', 'do not list the NIC in the metadata service')
  .option('--metadata-lag <ms>', 'the metadata service shows the NIC only this long after the attach')
  .option('--secondary-ips <n>', 'secondary private IPs metadata lists for it (0-8)', '0')
  .option('--no-wait', 'do not wait for the guest to configure it')
  .option('--timeout <s>', 'how long to wait', '180')
  .action(
    act(async (o: { subnet: string; metadata: boolean; metadataLag?: string; secondaryIps: string; wait: boolean; timeout: string }) => {
      const r = await vm.attach({
        name: name(),
        subnet: Number(o.subnet),
        secondaryIps: Number(o.secondaryIps),
        metadata: o.metadata,
        metadataLagMs: o.metadataLag ? Number(o.metadataLag) : undefined,
        wait: o.wait,
        timeoutMs: Number(o.timeout) * 1000,
        say,
      });
      process.stdout.write(JSON.stringify({ ...r.nic, configured_ms: r.configuredMs ?? null }) + '\n');
    }),
  );

program
  .command('detach [target]')
  .description('hot-unplug a NIC (MAC, guest name or nicN; default the last attached): QMP device_del, wait for DEVICE_DELETED')
  .option('--keep-metadata', 'leave the NIC listed in the metadata service')
  .action(
    act(async (target: string | undefined, o: { keepMetadata?: boolean }) => {
      const r = await vm.detach({ name: name(), target, keepMetadata: o.keepMetadata, say });
      process.stdout.write(JSON.stringify({ ...r.nic, deleted_ms: r.deletedMs }) + '\n');
    }),
  );

program
  .command('exec')
  .description('run a command in the guest: vm exec -- CMD ARGS... (use sh -c for a shell); exits with its status')
  .argument('<argv...>')
  .option('--timeout <s>', 'give up after', '120')
  .action(
    act(async (argv: string[], o: { timeout: string }) => {
      const r = await vm.exec(argv, { name: name(), timeoutMs: Number(o.timeout) * 1000 });
      process.stdout.write(r.stdout);
      process.stderr.write(r.stderr);
      return r.exitCode;
    }),
  );

program
  .command('status')
  .description('state of the VM (JSON)')
  .action(act(async () => void process.stdout.write(JSON.stringify(await vm.status(name()), null, 2) + '\n')));

program
  .command('console')
  .description('print the serial console log')
  .option('--tail <n>', 'last n lines only')
  .action(
    act(async (o: { tail?: string }) => {
      const text = await readFile(vmPaths(name()).console, 'utf8').catch(() => {
        throw new UserError('no console log (vm not up?)');
      });
      const lines = text.split('\n');
      process.stdout.write((o.tail ? lines.slice(-Number(o.tail)) : lines).join('\n'));
    }),
  );

program
  .command('down')
  .description('kill QEMU, dnsmasq and the metadata service by PID, delete the namespace and the run dir')
  .action(act(async () => void (await vm.down({ name: name(), say }))));

program.exitOverride((err) => process.exit(err.exitCode === 0 ? 0 : 2));
await program.parseAsync(process.argv);
