/**
 * The `secip` scenario: secondary IPs added and removed in metadata with no device event (issue 16
 * goal 5). Contenders with a poller: ADDS adds and REMOVES removes, alternating between the primary
 * NIC and a secondary one, each timed from the metadata change to the address configured (removed)
 * as seen from outside; timeMs is their median, samplesMs each. Then, in the first run, IMDS
 * requests over an idle window of IDLE_S with the daemon running and nothing changing. Contenders
 * without a poller: one add watched NO_POLLER_WATCH_MS, then "not supported" (and the manual
 * trigger, if any, timed).
 */
import * as lab from '../scripts/lab/index.js';
import { routeProblems } from './lib/checks.js';
import { Meter, base, stat, skipped, addrSnapshot, expectOf, EVENT_CAP_MS, type Env, type Measurement, type Scenario } from './scenarios.js';

export const SECIP_ADDS = 5;
export const SECIP_REMOVES = 2;
/** Idle window for the request count: at least a minute, as the goal is per minute. */
export const IDLE_S = 60;
const CAP_MS = 30_000;
const NO_POLLER_WATCH_MS = 3_000;
/** A random pause before each change, so changes fall at any phase of the poller's schedule. */
const MAX_PAUSE_MS = 3_000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A configured secondary NIC: the lag scenario's, else a fresh one (not measured). */
async function secondaryNic(env: Env): Promise<lab.NicInfo | null> {
  let nic = env.state.lagNic;
  const snap = await addrSnapshot(env);
  if (nic && snap.get(nic.ifname)?.has(nic.ips[0]!)) return nic;
  nic = await lab.attach({ name: env.ctx.name, deviceNumber: 3 });
  return (await env.watcher.waitAll(expectOf([nic]), EVENT_CAP_MS)) === null ? null : nic;
}

async function withoutPoller(env: Env, m: Measurement, nic: lab.NicInfo): Promise<Measurement> {
  const meter = new Meter(env);
  await meter.begin();
  const [ip] = await lab.addIp(nic.ifname, 1, { name: env.ctx.name });
  const exp = [{ ifname: nic.ifname, ips: [ip!] }];
  const at = await env.watcher.waitAll(exp, NO_POLLER_WATCH_MS);
  await meter.end(m, [], []);
  if (at !== null) {
    m.problems.push(`${ip} configured with no poller?`);
    m.correct = false;
    return m;
  }
  m.status = 'not-supported';
  m.notes.push(`not configured ${NO_POLLER_WATCH_MS / 1000} s after the metadata change (no event, no poller)`);
  if (env.contender.trigger) {
    const t = Date.now();
    const tr = await env.ctx.exec(env.contender.trigger, 120_000);
    const at2 = await env.watcher.waitAll(exp, 5000);
    m.triggeredMs = at2 !== null ? Math.round(at2 - t) : null;
    m.notes.push(
      at2 !== null
        ? `triggered by hand (${env.contender.trigger.slice(-1)[0]}): configured ${m.triggeredMs} ms after the command started`
        : `even triggered by hand (${env.contender.trigger.slice(-1)[0]}, exit ${tr.exitCode}) not configured`,
    );
  }
  return m;
}

/** IMDS requests while nothing changes (the daemon's probes; a token PUT if one falls due). */
async function idleRequests(env: Env): Promise<NonNullable<Measurement['idle']>> {
  await sleep(3000); // the last change's re-read and apply are over
  await lab.imdsStats({ name: env.ctx.name, reset: true });
  const t0 = Date.now();
  await sleep(IDLE_S * 1000);
  const st = await lab.imdsStats({ name: env.ctx.name });
  const seconds = (Date.now() - t0) / 1000;
  return { requests: st.total, tokenPuts: st.tokenPuts, seconds: Math.round(seconds * 10) / 10, perMinute: Math.round((st.total * 600) / seconds) / 10 };
}

export const secip: Scenario = {
  id: 'secip',
  label: 'secondary IPs added / removed in metadata, no device event',
  async run(env) {
    const m = base(env, this.id);
    const second = await secondaryNic(env);
    if (!second) return skipped(m, 'no configured NIC to add an IP to');
    if (!env.contender.poller) return withoutPoller(env, m, second);
    const primary = { ifname: 'eth0', deviceNumber: 0 };
    const nics = [primary, { ifname: second.ifname, deviceNumber: second.deviceNumber }];
    const meter = new Meter(env);
    await meter.begin();
    const samples = { add: [] as number[], remove: [] as number[] };
    const added: { ifname: string; ip: string; deviceNumber: number }[] = [];
    for (let i = 0; i < SECIP_ADDS + SECIP_REMOVES && !m.problems.length; i++) {
      await sleep(Math.random() * MAX_PAUSE_MS);
      const adding = i < SECIP_ADDS;
      const nic = nics[i % 2]!;
      if (adding) {
        const [ip] = await lab.addIp(nic.ifname, 1, { name: env.ctx.name });
        const t = Date.now();
        const exp = [{ ifname: nic.ifname, ips: [ip!] }];
        const at = await env.watcher.waitAll(exp, CAP_MS);
        if (at === null) m.problems.push(`${ip} on ${nic.ifname} not configured ${CAP_MS / 1000} s after the metadata change`);
        else samples.add.push(Math.max(0, Math.round(at - t)));
        added.push({ ...nic, ip: ip! });
      } else {
        const x = added.find((a) => a.ifname === nic.ifname);
        if (!x) continue;
        added.splice(added.indexOf(x), 1);
        await lab.removeIp(x.ifname, x.ip, { name: env.ctx.name });
        const t = Date.now();
        const at = await env.watcher.waitGone([{ ifname: x.ifname, ips: [x.ip] }], CAP_MS);
        if (at === null) m.problems.push(`${x.ip} still on ${x.ifname} ${CAP_MS / 1000} s after its removal from metadata`);
        else samples.remove.push(Math.max(0, Math.round(at - t)));
      }
    }
    await sleep(200);
    await meter.end(m, [], []);
    // Policy routing of the addresses still there (the secondary NIC's; the primary keeps the main table).
    if (env.contender.routes && !m.problems.length) {
      const onSecond = added.filter((a) => a.deviceNumber !== 0);
      if (onSecond.length) m.problems.push(...(await routeProblems(env.ctx, [{ ifname: second.ifname, deviceNumber: second.deviceNumber, ips: onSecond.map((a) => a.ip) }])));
    }
    m.samplesMs = samples;
    const all = stat([...samples.add, ...samples.remove]);
    m.timeMs = all?.median ?? null;
    m.notes.push(`adds ${samples.add.join(', ')} ms; removes ${samples.remove.join(', ')} ms`);
    if (env.run === 1) {
      m.idle = await idleRequests(env);
      m.notes.push(`idle: ${m.idle.requests} IMDS request(s) (${m.idle.tokenPuts} token PUT) in ${m.idle.seconds} s = ${m.idle.perMinute}/min`);
    }
    m.correct = m.problems.length === 0;
    if (!m.correct) m.status = 'failed';
    return m;
  },
};
