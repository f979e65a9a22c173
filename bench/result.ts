/** The shape of a bench result, as written to bench/results/*.json (schema 1). */
import type * as lab from '../scripts/lab/index.js';
import type { Measurement, Stat } from './scenarios.js';
import type { RunInfo } from '../scripts/results/record.js';
import type { LongIdle } from './long-idle.js';

export interface SummaryRow {
  mode: lab.LabMode;
  scenario: string;
  contender: string;
  runs: number;
  status: string;
  correct: string;
  timeMs: Stat & { min: number } | null;
  ratio: number | null;
  handledMs: Stat | null;
  afterMetadataMs: Stat | null;
  triggeredMs: number | null;
  crawls: Stat | null;
  imdsRequests: Stat | null;
  udevMs: Stat | null;
  hookMs: Stat | null;
  cpuS: Stat | null;
  peakRssMb: Stat | null;
  peakProcRssMb: Stat | null;
  notes: string[];
}

export interface Goal {
  goal: string;
  contender: string;
  value: string;
  met: boolean | null;
}

export interface BenchResult {
  schema: 1;
  tool: 'cloud-hotplug bench';
  /** Commit, clean tree, cores, load before/after (scripts/results/record.ts); absent in runs before it existed. */
  run?: RunInfo;
  startedAt: string;
  finishedAt: string;
  durationS: number;
  options: { runs: number; quick: boolean; modes: string[]; contenders: string[]; scenarios: string[]; budgetS: number; idleMinutes?: number; cloud?: string };
  machine: Record<string, unknown>;
  contenders: { id: string; label: string; available: boolean; reason?: string }[];
  labs: {
    name: string;
    mode: string;
    contender: string;
    run: number;
    upMs: number;
    /** node + python in the instance after setup, before any event (the idle daemon and its bridge). */
    idleRssMb: number | null;
    idlePssMb?: number | null;
    /** The same after the lab's last scenario, idle again, and how many uevents the lab's scenarios had. */
    endRssMb?: number | null;
    endPssMb?: number | null;
    /** PSS per process name (node, python3), idle and at the end. */
    idlePssByComm?: Record<string, number>;
    endPssByComm?: Record<string, number>;
    events?: number;
    error?: string;
  }[];
  /** The daemon idle for options.idleMinutes in a lab of its own (bench/long-idle.ts); absent in older runs. */
  longIdle?: LongIdle | null;
  measurements: Measurement[];
  summary: SummaryRow[];
  goals: Goal[];
  /** Quick mode verdict: every result of ours correct and upstream's add correct. */
  ok: boolean;
  failures: string[];
  notes: string[];
}
