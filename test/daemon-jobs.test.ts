/**
 * Daemon jobs, URL sources and cloud-config, unit level: the job store's records on disk (a daemon
 * killed mid-job → failed and handed back to be re-run), the URL source against a real local HTTP
 * server (ETag, 304, body hash, backoff), and cloud-config merged under config.yaml key by key with
 * the same errors and the origin of every setting.
 */
import { expect } from 'chai';
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setQuiet } from '../src/util/log.js';

// The job store writes under paths.runDir: a scratch root before it is imported.
const root = mkdtempSync(join(tmpdir(), 'hp-jobs-'));
process.env.HOTPLUG_ROOT = root;
const { JobStore, jobsDir, readJobsFromDisk } = await import('../src/daemon/job-store.js');
const { UrlSource } = await import('../src/daemon/url-source.js');
const { effectiveConfig, mergeDocs, CLOUD_NAME } = await import('../src/config-cloud.js');
delete process.env.HOTPLUG_ROOT;

const settle = () => new Promise((r) => setTimeout(r, 50));

after(() => rmSync(root, { recursive: true, force: true }));

describe('daemon jobs: the store', () => {
  it('persists every state (0600, whole files), lists newest last, and wakes waiters with progress', async () => {
    const s = new JobStore(1111);
    await s.load();
    const j = s.create('apply', { refresh: true }, 'socket');
    const steps: string[] = [];
    const done = s.wait(j.id, (st) => steps.push(st));
    await s.update(j.id, { state: 'running', started: new Date().toISOString() });
    s.step(j.id, 'refreshing metadata');
    await s.update(j.id, { state: 'done', result: { ok: 1 }, duration_ms: 5 });
    expect((await done).state).to.equal('done');
    expect(steps).to.deep.equal(['refreshing metadata']);
    await settle();
    const file = join(jobsDir(), `${j.id}.json`);
    expect(statSync(file).mode & 0o777).to.equal(0o600);
    expect(JSON.parse(readFileSync(file, 'utf8'))).to.deep.include({ id: j.id, state: 'done', duration_ms: 5 });
    expect(readdirSync(jobsDir()).filter((n) => n.endsWith('.tmp'))).to.deep.equal([]);
    expect(readJobsFromDisk().map((x) => x.id)).to.include(j.id);
    // A waiter that attaches late (after steps, even after the end) hears the steps taken so far.
    const late: string[] = [];
    expect((await s.wait(j.id, (st) => late.push(st))).state).to.equal('done');
    expect(late).to.deep.equal(['refreshing metadata']);
    let err = '';
    await s.wait('zzzzzz-000000').catch((e) => (err = String(e)));
    expect(err).to.match(/no job zzzzzz-000000/);
  });

  it('a job left running or queued by a dead daemon is failed ("interrupted") and returned to be run again; finished ones stay as they were', async () => {
    const dead = new JobStore(2222);
    await dead.load();
    const running = dead.create('apply', { refresh: true }, 'socket');
    await dead.update(running.id, { state: 'running' });
    const queued = dead.create('refresh', {}, 'tcp');
    const fine = dead.create('refresh', {}, 'socket');
    await dead.update(fine.id, { state: 'done', result: {} });
    await settle();
    const next = new JobStore(3333);
    const back = await next.load();
    expect(back.map((j) => j.id).sort()).to.deep.equal([running.id, queued.id].sort());
    for (const j of back) {
      expect(j.state).to.equal('failed');
      expect(j.error).to.match(/^interrupted: daemon pid 2222 stopped while the job was (running|queued)$/);
    }
    await settle();
    expect(readJobsFromDisk().find((j) => j.id === running.id)?.state).to.equal('failed');
    expect(next.get(fine.id)?.state).to.equal('done');
    // A waiter on the failed job gets it at once.
    expect((await next.wait(running.id)).state).to.equal('failed');
  });
});

describe('daemon: URL event source (a real local HTTP server)', function () {
  this.timeout(20_000);
  let server: Server;
  let port = 0;
  let etag: string | null = '"v1"';
  let body = 'one';
  let status = 200;
  const seen: (string | undefined)[] = [];
  before(async () => {
    setQuiet(true);
    server = createServer((req, res) => {
      seen.push(req.headers['if-none-match'] as string | undefined);
      if (status !== 200) return void res.writeHead(status).end();
      if (etag && req.headers['if-none-match'] === etag) return void res.writeHead(304).end();
      res.writeHead(200, etag ? { ETag: etag } : {}).end(body);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    port = (server.address() as { port: number }).port;
  });
  after(() => {
    server.close();
    setQuiet(false);
  });

  function source(policy: unknown = { run: ['/bin/true'] }) {
    const ran: string[] = [];
    const scheduled: (() => Promise<void>)[] = [];
    const recs: Record<string, unknown>[] = [];
    const u = new UrlSource(
      { url: `http://127.0.0.1:${port}/change`, interval_seconds: 30, timeout_seconds: 2, policy: policy as never },
      {
        schedule: (_w, fn) => scheduled.push(fn),
        stopping: () => false,
        policy: () => 'apply',
        pollMetadata: async () => (ran.push('poll'), { ok: true, reason: 'metadata polled' }),
        reconcile: async () => (ran.push('reconcile'), { ok: true }),
        emit: (r) => recs.push(r),
      },
    );
    return { u, ran, scheduled, recs };
  }

  it('first answer is the baseline; If-None-Match → 304 is no change; a new ETag runs the policy once', async () => {
    etag = '"v1"';
    const { u, ran, scheduled, recs } = source(null);
    await u.pollOnce();
    await u.pollOnce();
    expect(seen.slice(-2)).to.deep.equal([undefined, '"v1"']);
    expect(u.stats).to.include({ polls: 2, changes: 0, not_modified: 1, etag: '"v1"' });
    expect(scheduled).to.have.length(0);
    etag = '"v2"';
    await u.pollOnce();
    expect(u.stats.changes).to.equal(1);
    expect(scheduled).to.have.length(1);
    await scheduled[0]!();
    expect(ran).to.deep.equal(['poll']); // events.url_change (apply): the metadata polled now
    expect(recs[0]).to.include({ type: 'url_change', etag: '"v2"', policy: 'apply', result: 'ok', handler: 'apply' });
  });

  it('without an ETag the body hash is the tag; a {run} policy gets HOTPLUG_URL and HOTPLUG_ETAG', async () => {
    etag = null;
    body = 'one';
    const out = join(root, 'url-run.txt');
    const { u, scheduled } = source({ run: ['/bin/sh', '-c', `echo "$HOTPLUG_URL $HOTPLUG_ETAG" > ${out}`] });
    await u.pollOnce();
    body = 'two';
    await u.pollOnce();
    expect(u.stats.etag).to.match(/^sha256:[0-9a-f]{64}$/);
    await scheduled[0]!();
    expect(readFileSync(out, 'utf8').trim()).to.equal(`http://127.0.0.1:${port}/change ${u.stats.etag}`);
  });

  it('errors back off (state backoff, delay at least 1 s) and recover', async () => {
    etag = '"v3"';
    status = 503;
    const { u } = source();
    const delay = await u.pollOnce();
    expect(u.stats).to.include({ state: 'backoff', errors: 1, last_error: 'HTTP 503' });
    expect(delay).to.be.at.least(1000);
    status = 200;
    expect(await u.pollOnce()).to.equal(30_000);
    expect(u.stats).to.include({ state: 'ok', last_error: null });
  });
});

describe('config from cloud-config under config.yaml', () => {
  const cloud = (config: Record<string, unknown> | null, type = 'dict') => ({ present: true, config, type });

  it('merges key by key (the file wins per setting, lists replace) and says where each setting came from', () => {
    const e = effectiveConfig(
      { daemon: { poll_interval_seconds: 7 }, filter: { deny_names: ['x*'] } },
      cloud({ daemon: { poll_interval_seconds: 3, listeners: { fifo: { enabled: true } } }, retry: { budget_seconds: 9 }, filter: { deny_names: ['a*', 'b*'] } }),
    );
    expect(e.config.daemon.poll_interval_seconds).to.equal(7);
    expect(e.config.daemon.listeners.fifo.enabled).to.equal(true);
    expect(e.config.retry.budget_seconds).to.equal(9);
    expect(e.config.filter.deny_names).to.deep.equal(['x*']);
    expect(e.origins).to.include({
      'daemon.poll_interval_seconds': 'config.yaml',
      'daemon.listeners.fifo.enabled': 'cloud-config',
      'retry.budget_seconds': 'cloud-config',
      'retry.max_ms': 'default',
      'filter.deny_names': 'config.yaml',
      'events.add': 'default',
    });
    expect(e.cloud).to.deep.equal({ state: 'read' });
  });

  it('the same validation and messages for both, naming where the bad key is', () => {
    const err = (f: () => unknown) => {
      try {
        f();
      } catch (x) {
        return (x as Error).message;
      }
      return 'accepted';
    };
    expect(err(() => effectiveConfig(null, cloud({ daemon: { poll_interval_seconds: -1 } })))).to.equal(`${CLOUD_NAME}: daemon.poll_interval_seconds must be a number between 1 and 3600`);
    expect(err(() => effectiveConfig({ daemon: { poll_interval_seconds: -1 } }, { present: false, config: null, type: 'absent' }))).to.equal('config.yaml: daemon.poll_interval_seconds must be a number between 1 and 3600');
    expect(err(() => effectiveConfig(null, cloud({ bogus: 1 })))).to.match(new RegExp(`^${CLOUD_NAME}: \\(top level\\)\\.bogus is not a known key`));
    expect(err(() => effectiveConfig(null, cloud(null, 'list')))).to.equal(`${CLOUD_NAME}: the document must be a mapping (got list)`);
    // Each part valid alone, invalid together.
    expect(err(() => effectiveConfig({ retry: { initial_ms: 3000 } }, cloud({ retry: { max_ms: 1000 } })))).to.match(/^config\.yaml over cloud-config cloud_hotplug: retry\.max_ms must be at least retry\.initial_ms/);
  });

  it('cloud-config that cannot be read counts as absent, and says why', () => {
    const e = effectiveConfig({ routing: { enabled: false } }, { error: 'no cache' });
    expect(e.cloud).to.deep.equal({ state: 'unavailable', error: 'no cache' });
    expect(e.origins['routing.enabled']).to.equal('config.yaml');
    expect(mergeDocs({ a: { b: 1 } }, { a: null })).to.deep.equal({ a: { b: 1 } });
  });
});
