#!/usr/bin/env node
/**
 * `npm run report`: rewrites the generated blocks of README.md, docs/reliability.md and
 * docs/vm.md (see markers.ts) from the latest results files, and nothing else. `--check` writes
 * nothing and exits 1 when a file differs from what it would write (test/report.test.ts does the
 * same, so a hand edit of a generated table cannot pass CI).
 *
 *   block         results file                                  used in
 *   performance   bench/results/latest.json                     README.md
 *   performance-openstack  bench/results/openstack/latest.json  README.md
 *   reliability   test/results/reliability-latest.json          README.md, docs/reliability.md
 *   vm            test/results/vm-<flavour>-latest.json         docs/vm.md
 *   stacks        test/results/{lab-<stack>,vm-<flavour>}-latest.json  README.md
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { BenchResult } from '../../bench/result.js';
import type { ReliabilityResults } from '../../test/support/figures.js';
import type { VmResults } from '../../test/integration/vm/results.js';
import { REPO } from './record.js';
import { fillBlocks } from './markers.js';
import { notMeasured } from './provenance.js';
import { performanceTable } from './bench-tables.js';
import { reliabilityTable } from './reliability-table.js';
import { vmTable, FLAVOURS } from './vm-table.js';
import { stacksTable, STACKS } from './stacks-table.js';

export const DOCS = ['README.md', 'docs/reliability.md', 'docs/vm.md'];

function latest<T>(root: string, file: string): T | null {
  const p = join(root, file);
  return existsSync(p) ? (JSON.parse(readFileSync(p, 'utf8')) as T) : null;
}

/** Every block's content from the results files under `root`. */
export function blocks(root = REPO): Record<string, string> {
  const BENCH = 'bench/results/latest.json';
  const REL = 'test/results/reliability-latest.json';
  const BENCH_OS = 'bench/results/openstack/latest.json';
  const bench = latest<BenchResult>(root, BENCH);
  const benchOs = latest<BenchResult>(root, BENCH_OS);
  const rel = latest<ReliabilityResults>(root, REL);
  const vms: Partial<Record<string, { file: string; r: VmResults }>> = {};
  for (const f of FLAVOURS) {
    const file = `test/results/vm-${f}-latest.json`;
    const r = latest<VmResults>(root, file);
    if (r) vms[f] = { file, r };
  }
  const labs: Partial<Record<string, { file: string; r: VmResults }>> = {};
  for (const s of STACKS) {
    if (!s.lab) continue;
    const file = `test/results/lab-${s.lab}-latest.json`;
    const r = latest<VmResults>(root, file);
    if (r) labs[s.lab] = { file, r };
  }
  return {
    stacks: stacksTable(labs, vms),
    performance: bench ? performanceTable(BENCH, bench) : notMeasured('`npm run bench` writes it', BENCH),
    'performance-openstack': benchOs ? performanceTable(BENCH_OS, benchOs) : notMeasured('`npm run bench -- --cloud openstack` writes it', BENCH_OS),
    reliability: rel ? reliabilityTable(REL, rel) : notMeasured('`npm run test:reliability` writes it', REL),
    vm: vmTable(vms),
  };
}

/** Each document as it is and as `report` would write it. */
export function rendered(root = REPO): { file: string; current: string; wanted: string }[] {
  const b = blocks(root);
  return DOCS.map((file) => {
    const current = readFileSync(join(root, file), 'utf8');
    return { file, current, wanted: fillBlocks(current, b, file) };
  });
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const check = process.argv.includes('--check');
  const stale = rendered().filter((d) => d.current !== d.wanted);
  for (const d of stale) {
    if (check) process.stdout.write(`${d.file}: generated tables differ from the results files (run npm run report)\n`);
    else writeFileSync(join(REPO, d.file), d.wanted);
  }
  if (!check) process.stdout.write(stale.length ? `rewrote ${stale.map((d) => d.file).join(', ')}\n` : 'up to date\n');
  process.exit(check && stale.length ? 1 : 0);
}
