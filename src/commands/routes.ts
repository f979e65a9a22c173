/**
 * `hotplug routes [--json]`: the policy routing metadata asks for versus what the system has,
 * marking what is missing, extra (ours, no longer wanted) and foreign (not ours, never touched).
 */
import type { Command } from 'commander';
import { action, printJson } from './common.js';
import { withSession } from '../core/session.js';
import { loadConfig } from '../config.js';
import { snapshot, type Snapshot } from '../routing/reconcile.js';
import { describeChange } from '../routing/change.js';
import { chooseStack } from '../stack/index.js';
export { previewRoutes, type RoutesPreview } from '../routing/preview.js';
import { compareRows, type Row } from '../routing/report.js';
import { ROUTING_PROTO } from '../routing/state.js';
import { explain, explainText } from '../routing/explain.js';
import { systemIp } from '../routing/run.js';
import { UserError } from '../util/errors.js';


const MARK: Record<Row['status'], string> = { ok: ' ', missing: '+', extra: '-', foreign: '~' };

/** The `routes` output for a snapshot: a JSON document and the text form. */
export function routesView(s: Snapshot, enabled: boolean): { json: Record<string, unknown>; text: string } {
  const rows = compareRows(s);
  const nics = s.desired.nics.map((n) => ({
    ifname: n.ifname,
    mac: n.mac,
    up: n.up,
    table: n.table,
    priority: n.priority,
    device_number: n.deviceNumber,
    network_card: n.networkCard,
    gateway4: n.gateway4,
    gateway6: n.gateway6,
  }));
  const json = {
    enabled,
    protocol: ROUTING_PROTO,
    primary: s.desired.primary,
    nics,
    rows,
    pending: s.plan.changes.map((c) => ({ ...c, command: describeChange(c) })),
    main_rules: s.desired.mainRules,
    collisions: s.plan.collisions,
    skipped: [...s.desired.skipped, ...s.plan.notes],
  };
  const out: string[] = [];
  out.push(`policy routing: ${enabled ? 'enabled' : 'disabled (routing.enabled: false; nothing is applied)'} (ours: protocol ${ROUTING_PROTO})`);
  const p = s.desired.primary;
  out.push(`primary: ${p.ifname ?? '-'} ${p.mac ?? ''} (${p.source}; main table, no rules)`);
  for (const n of nics) {
    const gw = n.gateway4 ? `${n.gateway4.address} (${n.gateway4.source})` : '-';
    out.push(`nic ${n.ifname} ${n.mac} table ${n.table}${n.up ? '' : ' (down)'} gateway ${gw}${n.gateway6 ? ` gateway6 ${n.gateway6}` : ''}`);
  }
  for (const kind of ['rule', 'route', 'address'] as const) {
    const rs = rows.filter((r) => r.kind === kind);
    if (!rs.length) continue;
    out.push('', `${kind === 'address' ? 'addresses' : kind + 's'}:`);
    for (const r of rs) {
      const who = r.owner === 'foreign' && r.status === 'ok' ? ' (foreign)' : '';
      out.push(`  ${MARK[r.status]} ${r.family === 6 ? '-6 ' : ''}${r.text}${who}${r.note ? `   # ${r.note}` : ''}`);
    }
  }
  if (s.plan.collisions.length) {
    out.push('', 'collisions (numbers of our layout someone else uses; left alone):');
    for (const c of s.plan.collisions) out.push(`  ${c.family === 6 ? '-6 ' : ''}${c.kind} ${c.number}: ${c.found}: ${c.reason}`);
  }
  if (s.desired.skipped.length) {
    out.push('', 'skipped metadata:');
    for (const k of s.desired.skipped) out.push(`  ${[k.ifname ?? k.mac, k.what, k.value].filter(Boolean).join(' ')}: ${k.reason}`);
  }
  out.push('', 'legend: "+" missing, "-" extra (ours), "~" foreign (not ours, never touched)');
  out.push(s.plan.changes.length ? `${s.plan.changes.length} change(s) pending (made by the next reconcile)` : 'in sync');
  return { json, text: out.join('\n') + '\n' };
}

export function register(program: Command): void {
  program
    .command('routes')
    .description(
      `Show the policy routing for secondary NICs that metadata asks for versus what the system has:
"+" missing, "-" extra (ours, no longer wanted), "~" foreign (not ours; never touched), and any
collision with a user's tables or rule priorities. With --explain DEST [--from SRC]: which rule and
table the kernel uses for that packet (ip route get, matched against ip rule). Changes nothing.`,
    )
    .option('--json', 'machine-readable output')
    .option('--explain <dest>', 'explain the route the kernel chooses to this address')
    .option('--from <src>', 'with --explain: the source address of the packet (one of this host)')
    .action(
      action(async (opts: { json?: boolean; explain?: string; from?: string }) => {
        if (opts.from !== undefined && opts.explain === undefined) throw new UserError('--from needs --explain DEST');
        if (opts.explain !== undefined) {
          const e = await explain(systemIp(), opts.explain, opts.from);
          if (opts.json) printJson(e);
          else process.stdout.write(explainText(e));
          return;
        }
        const config = await loadConfig();
        const { summary, stack } = await withSession(async ({ summary, stack }) => ({ summary, stack: chooseStack(stack) }));
        const s = await snapshot({ summary, config, metadataComplete: true, env: { leaseGateway: (n) => stack.leaseGateway(n) } });
        const v = routesView(s, config.routing.enabled);
        if (opts.json) printJson(v.json);
        else process.stdout.write(v.text);
      }),
    );
}
