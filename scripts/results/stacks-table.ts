/**
 * The README's table of network stacks: for each stack cloud-init 22.4.2 can render and activate,
 * what was verified where, from the results files: the lab's stack suites
 * (test/results/lab-<stack>-latest.json) and the VM tier's flavours (vm-<flavour>-latest.json, and
 * vm-<flavour>-<cloud>-latest.json for a flavour run on a Nova cloud).
 */
import type { VmResults } from '../../test/integration/vm/results.js';
import { fromRun, provenance } from './provenance.js';

type Checks = { file: string; r: Pick<VmResults, 'checks' | 'run'> };

/** Each stack: its renderer and activator, the lab results file (if the lab runs it) and the VM flavour. */
export const STACKS: { stack: string; renderer: string; activator: string; lab: string | null; vm: string }[] = [
  { stack: 'ifupdown + dhclient', renderer: 'eni', activator: 'IfUpDownActivator', lab: 'ifupdown', vm: 'ifupdown' },
  { stack: 'netplan → systemd-networkd', renderer: 'netplan', activator: 'NetplanActivator', lab: null, vm: 'netplan' },
  { stack: 'systemd-networkd', renderer: 'networkd', activator: 'NetworkdActivator', lab: 'networkd', vm: 'networkd' },
  { stack: 'NetworkManager', renderer: 'network-manager', activator: 'NetworkManagerActivator', lab: 'network-manager', vm: 'nm' },
];

/** The Nova clouds a VM flavour may also have run on (nova.test.ts). */
export const VM_NOVA_CLOUDS = ['openstack', 'configdrive'];

/** "N/M checks passed (DATE, commit C)" from a results file, or `missing`. */
function cell(c: Checks | undefined, missing: string): string {
  if (!c) return missing;
  const passed = c.r.checks.filter((x) => x.state === 'passed').length;
  const run = c.r.run;
  return `${passed}/${c.r.checks.length} checks passed (${run.startedAt.slice(0, 10)}, commit ${run.commit.slice(0, 12)}${run.clean ? '' : ', dirty tree'})`;
}

export function stacksTable(lab: Partial<Record<string, Checks>>, vm: Partial<Record<string, Checks>>): string {
  const lines = ['| stack | renderer / activator | lab (`npm run test:stacks`) | VM (`npm run test:vm`) |', '|---|---|---|---|'];
  const srcs: string[] = [];
  for (const s of STACKS) {
    const l = s.lab ? lab[s.lab] : undefined;
    const v = vm[s.vm];
    const labCell = s.lab === 'ifupdown' ? "the lab's default: every lab suite runs on it" : s.lab ? cell(l, `not measured yet (no \`test/results/lab-${s.lab}-latest.json\`)`) : 'not in the lab';
    // EC2's run, then the same flavour on each Nova cloud it ran on.
    const clouds = VM_NOVA_CLOUDS.flatMap((c) => (vm[`${s.vm}-${c}`] ? [[c, vm[`${s.vm}-${c}`]!] as const] : []));
    const vmCell = [cell(v, `not measured yet (no \`test/results/vm-${s.vm}-latest.json\`)`), ...clouds.map(([c, x]) => `on ${c}: ${cell(x, '')}`)].join('; ');
    lines.push(`| ${s.stack} | ${s.renderer} / ${s.activator} | ${labCell} | ${vmCell} |`);
    if (l) srcs.push(`lab ${s.lab}: ${provenance(fromRun(l.file, l.r.run))}`);
    if (v) srcs.push(`VM ${s.vm}: ${provenance(fromRun(v.file, v.r.run))}`);
    for (const [c, x] of clouds) srcs.push(`VM ${s.vm} on ${c}: ${provenance(fromRun(x.file, x.r.run))}`);
  }
  const all = [...Object.entries(lab).map(([k, c]) => [`lab ${k}`, c] as const), ...Object.entries(vm).map(([k, c]) => [`VM ${k}`, c] as const)];
  const failing = all.flatMap(([k, c]) => (c?.r.checks ?? []).filter((x) => x.state !== 'passed').map((x) => `${k}: ${x.state}: ${x.title}`));
  return [...lines, '', ...srcs.map((x) => `- ${x}`), ...(failing.length ? ['', `Not passed: ${failing.join('; ')}.`] : [])].join('\n');
}
