/**
 * The `apply` scenario: `hotplug apply` run by hand three times in a row on a configured instance,
 * through the warm daemon (contender daemon: a job of its queue, its bridge already up) or one-shot
 * (contender oneshot: node + Python start-up every time). timeMs: the command's wall time (median,
 * from the host); handledMs: the apply's own duration_ms (median; from the job's start, so the
 * one-shot's excludes its start-up). Upstream has no such command: not supported.
 */
import { CLI } from './contenders.js';
import { Meter, base, stat, type Scenario } from './scenarios.js';

const RUNS = 3;

export const applyCmd: Scenario = {
  id: 'apply',
  label: 'hotplug apply by hand (through the warm daemon, or one-shot)',
  async run(env) {
    const m = base(env, this.id);
    if (!env.contender.ours) {
      m.status = 'not-supported';
      m.notes.push('no apply command');
      return m;
    }
    const meter = new Meter(env);
    await meter.begin();
    const walls: number[] = [];
    const own: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      const t = performance.now();
      const r = await env.ctx.exec([process.execPath, CLI, 'apply', '--json']);
      walls.push(performance.now() - t);
      if (r.exitCode !== 0) {
        m.status = 'failed';
        m.problems.push(`hotplug apply exited ${r.exitCode}: ${r.stderr.trim().split('\n').pop() ?? ''}`);
        break;
      }
      own.push(Number(JSON.parse(r.stdout).duration_ms));
    }
    await meter.end(m, [], []);
    m.timeMs = stat(walls)?.median ?? null;
    m.handledMs = stat(own)?.median ?? null;
    m.correct = m.status === 'ok';
    m.notes.push(`${walls.length} run(s): wall ${walls.map(Math.round).join(', ')} ms; apply's own ${own.join(', ')} ms`);
    return m;
  },
};
