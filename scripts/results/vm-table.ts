/**
 * The VM tier's timings (docs/vm.md), one column per flavour on EC2 and per flavour on a Nova
 * cloud (ifupdown-openstack, ifupdown-configdrive: nova.test.ts), from
 * test/results/vm-<column>-latest.json; a column without a results file says "not measured yet".
 */
import type { VmResults } from '../../test/integration/vm/results.js';
import { fromRun, provenance } from './provenance.js';

export const FLAVOURS = ['ifupdown', 'netplan', 'networkd', 'nm', 'ifupdown-openstack', 'ifupdown-configdrive'] as const;

/** Timing keys the suite writes, in table order, with what they measure. */
const ROWS: [string, string][] = [
  ['boot_s', 'QEMU start → cloud-init finished (s)'],
  ['early_nic_queued_before_boot_end_s', 'NIC from boot: kernel event queued before cloud-init finished by (s)'],
  ['early_nic_configured_after_boot_end_s', 'NIC from boot: configured after cloud-init finished (s)'],
  ['attach_to_configured_s', '`device_add` → DHCP address, no daemon: udev → sh hook → worker unit (s)'],
  ['daemon_attach_to_configured_s', 'the same with the daemon running (s)'],
  ['ignored_record_after_attach_s', 'configdrive: `device_add` of a NIC the drive does not list → its `ignored` record (s)'],
  ['detach_to_removed_s', '`device_del` → the remove recorded (s)'],
  ['purge_s', '`dpkg --purge cloud-hotplug` (s)'],
];

export function vmTable(files: Partial<Record<string, { file: string; r: VmResults }>>): string {
  const cols = FLAVOURS.map((f) => files[f]);
  const lines = [`| step | ${FLAVOURS.join(' | ')} |`, `|---|${FLAVOURS.map(() => '---:').join('|')}|`];
  const keys = [...ROWS, ...[...new Set(cols.flatMap((c) => Object.keys(c?.r.timings ?? {})))].filter((k) => !ROWS.some(([x]) => x === k)).map((k): [string, string] => [k, k])];
  for (const [k, label] of keys) lines.push(`| ${label} | ${cols.map((c) => (c ? (c.r.timings[k] ?? 'not measured') : 'not measured yet')).join(' | ')} |`);
  lines.push(`| checks passed | ${cols.map((c) => (c ? `${c.r.checks.filter((x) => x.state === 'passed').length}/${c.r.checks.length}` : 'not measured yet')).join(' | ')} |`);
  const src = FLAVOURS.map((f, i) => (cols[i] ? `${f}: ${provenance(fromRun(cols[i]!.file, cols[i]!.r.run))}` : `${f}: not measured yet (no \`test/results/vm-${f}-latest.json\`; \`npm run test:vm\` writes it).`));
  const failing = FLAVOURS.flatMap((f, i) => (cols[i]?.r.checks ?? []).filter((c) => c.state !== 'passed').map((c) => `${f}: ${c.state}: ${c.title}${c.error ? ` (${c.error})` : ''}`));
  return [...src.map((s) => `- ${s}`), '', ...lines, ...(failing.length ? ['', `Not passed: ${failing.join('; ')}.`] : [])].join('\n');
}
