/** Which lab jobs a bench run is made of: the scenario groups, and their order across modes, contenders and runs. */
import type * as lab from '../scripts/lab/index.js';
import type { Contender } from './contenders.js';
import { add1, remove1, lag, multi, churn, type Scenario } from './scenarios.js';
import { secip } from './scenario-secip.js';
import { applyCmd } from './scenario-apply.js';

/** A lab booted for one contender, running some scenarios in order. */
export interface Job {
  mode: lab.LabMode;
  group: string;
  contender: Contender;
  run: number;
  scenarios: Scenario[];
}

/** Scenarios that share a lab, in order; `once`: only in the first run; `only`: for that contender alone. */
export const GROUPS: { id: string; scenarios: Scenario[]; once?: boolean; only?: string }[] = [
  { id: 'a', scenarios: [add1, remove1, lag, secip, applyCmd] },
  { id: 'n4', scenarios: [multi(4)] },
  { id: 'n8', scenarios: [multi(8)] },
  { id: 'n16', scenarios: [multi(16)] },
  { id: 'x', scenarios: [multi(16, 8)], once: true },
  { id: 'c', scenarios: [churn], once: true, only: 'daemon' },
];
/** Scenarios of the first group run on the generic lab only. */
export const GENERIC_ONLY = ['secip', 'apply'];
export const SCENARIO_IDS = GROUPS.flatMap((g) => g.scenarios.map((s) => s.id));

/**
 * Why upstream's hook fails every event on a cloud whose lab caches a *Local datasource (OpenStack,
 * ConfigDrive's OpenStack family): seen in the lab's cloud-init.log, not inferred.
 */
export const UPSTREAM_FAILS: Partial<Record<string, string>> = {
  openstack:
    'cached DataSourceOpenStackLocal re-runs ephemeral DHCP on eth0 for every event; cloud-init 22.4 tolerates only "File exists" from `ip addr add`, iproute2 6.1 says "Address already assigned", so each event fails after ~50 s of retries',
};

/**
 * Order: generic run 1 (every group, 16×8 included), then the faithful lab (one run), then the
 * remaining generic runs; contenders rotate every run. If the time budget runs out, what is
 * skipped is a repeat, never a whole scenario or mode.
 */
export function plan(o: { runs: number; modes: lab.LabMode[]; scenarios: string[]; upstreamFails?: boolean }, contenders: Contender[]): Job[] {
  const jobs: Job[] = [];
  const rot = (r: number) => contenders.map((_, i) => contenders[(i + r - 1) % contenders.length]!);
  // upstreamFails (clouds whose cached datasource is *Local, see UPSTREAM_FAILS): upstream runs
  // add1 once, capped, like on the faithful lab; its other scenarios are reported as not run.
  const mine = (c: Contender, g: (typeof GROUPS)[number], run: number, sc: Scenario[]) =>
    o.upstreamFails && c.id === 'upstream' ? (run === 1 && g.id === 'a' ? sc.filter((s) => s.id === 'add1') : []) : sc;
  const generic = (run: number) => {
    for (const g of GROUPS) {
      if (g.once && run > 1) continue;
      const sc = g.scenarios.filter((s) => o.scenarios.includes(s.id));
      for (const c of rot(run)) {
        const own = mine(c, g, run, sc);
        if (own.length && (!g.only || g.only === c.id)) jobs.push({ mode: 'generic', group: g.id, contender: c, run, scenarios: own });
      }
    }
  };
  const faithful = () => {
    // the single-NIC group once; no secip (the poller is the same on both labs) nor apply (the
    // same command). Upstream: add1 only, capped: it fails every event after ~50 s of retries there.
    const sc = GROUPS[0]!.scenarios.filter((s) => o.scenarios.includes(s.id) && !GENERIC_ONLY.includes(s.id));
    for (const c of contenders) {
      const mine = c.ours ? sc : sc.filter((s) => s.id === 'add1');
      if (mine.length) jobs.push({ mode: 'faithful', group: 'a', contender: c, run: 1, scenarios: mine });
    }
  };
  if (o.modes.includes('generic')) generic(1);
  if (o.modes.includes('faithful')) faithful();
  if (o.modes.includes('generic')) for (let run = 2; run <= o.runs; run++) generic(run);
  return jobs;
}
