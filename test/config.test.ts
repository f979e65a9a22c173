import { expect } from 'chai';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig, parseConfig, validateConfig, defaultConfig } from '../src/config.js';
import { UserError } from '../src/util/errors.js';

async function bad(yaml: string): Promise<string> {
  try {
    await parseConfig(yaml);
  } catch (e) {
    expect(e).to.be.instanceOf(UserError);
    const msg = (e as Error).message;
    expect(msg).not.to.include('\n');
    return msg;
  }
  throw new Error(`accepted: ${yaml}`);
}

describe('config', () => {
  let dir: string;
  beforeEach(() => { dir = mkdtempSync(join(tmpdir(), 'hp-cfg-')); });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('a missing file means the defaults', async () => {
    const c = await loadConfig(join(dir, 'nope.yaml'));
    expect(c).to.deep.equal(defaultConfig);
    expect(c.retry).to.deep.equal({ budget_seconds: 60, initial_ms: 150, max_ms: 5000 });
    expect(c.events.link_down).to.equal('reconcile');
    expect(c.filter.deny_names).to.include.members(['lo', 'docker*', 'veth*', 'vxlan*']);
    expect(c.filter.deny_drivers).to.deep.equal([]); // never deny by driver: lab NICs are veths named ethN
  });

  it('an empty file or comments only means the defaults', async () => {
    writeFileSync(join(dir, 'config.yaml'), '# nothing\n');
    expect(await loadConfig(join(dir, 'config.yaml'))).to.deep.equal(defaultConfig);
    expect(await parseConfig('retry:\n')).to.deep.equal(defaultConfig);
  });

  it('merges a partial file over the defaults; lists replace', async () => {
    writeFileSync(join(dir, 'config.yaml'), `
retry:
  budget_seconds: 5
filter:
  deny_names: ['docker*']
  allow_drivers: [ena, 'mlx5*']
routing:
  primary: 02:AB:00:00:00:01
  table_base: 20000
daemon:
  socket: /run/x.sock
events:
  remove: ignore
  metadata_change: { run: [/usr/local/bin/notify, --why, metadata] }
`);
    const c = await loadConfig(join(dir, 'config.yaml'));
    expect(c.retry).to.deep.equal({ budget_seconds: 5, initial_ms: 150, max_ms: 5000 });
    expect(c.filter.deny_names).to.deep.equal(['docker*']);
    expect(c.filter.allow_drivers).to.deep.equal(['ena', 'mlx5*']);
    expect(c.routing).to.deep.equal({ enabled: true, table_base: 20000, primary: '02:ab:00:00:00:01' });
    expect(c.daemon).to.deep.include({ poll_interval_seconds: 10, socket: '/run/x.sock', url_sources: [] });
    expect(c.daemon.listeners.fifo.enabled || c.daemon.listeners.tcp.enabled, 'FIFO and TCP off by default').to.equal(false);
    expect(c.events).to.deep.equal({ add: 'apply', remove: 'ignore', metadata_change: { run: ['/usr/local/bin/notify', '--why', 'metadata'] }, link_down: 'reconcile', url_change: 'apply' });
  });

  it('returns a copy: mutating it does not touch the frozen defaults', async () => {
    const c = await loadConfig(join(dir, 'nope.yaml'));
    c.filter.deny_names.push('eth*');
    expect(defaultConfig.filter.deny_names).not.to.include('eth*');
    expect(Object.isFrozen(defaultConfig.filter.deny_names)).to.equal(true);
  });

  it('names the key and the rule in one line', async () => {
    expect(await bad('retry: {budget_seconds: "60"}')).to.equal('config.yaml: retry.budget_seconds must be a number between 1 and 3600');
    expect(await bad('retry: {budget_seconds: 0}')).to.match(/retry\.budget_seconds must be a number between 1 and 3600/);
    expect(await bad('retry: {budget_seconds: 4000}')).to.match(/retry\.budget_seconds/);
    expect(await bad('retry: {initial_ms: 1000, max_ms: 500}')).to.match(/retry\.max_ms must be at least retry\.initial_ms/);
    expect(await bad('routing: {table_base: 10.5}')).to.match(/routing\.table_base must be an integer/);
    expect(await bad('routing: {table_base: 254}')).to.match(/routing\.table_base/);
    expect(await bad('routing: {enabled: "yes"}')).to.match(/routing\.enabled must be true or false/);
    expect(await bad('routing: {primary: "eth0; reboot"}')).to.match(/routing\.primary/);
    expect(await bad('daemon: {poll_interval_seconds: 0}')).to.match(/daemon\.poll_interval_seconds/);
    expect(await bad('daemon: {socket: relative.sock}')).to.match(/daemon\.socket must be an absolute path/);
    expect(await bad(`daemon: {socket: /${'a'.repeat(120)}}`)).to.match(/daemon\.socket/);
    expect(await bad('filter: {deny_names: docker*}')).to.match(/filter\.deny_names must be a list/);
    expect(await bad('filter: {deny_names: ["ok", "has space"]}')).to.match(/filter\.deny_names\[1\]/);
    expect(await bad('filter: {allow_names: [3]}')).to.match(/filter\.allow_names\[0\]/);
  });

  it('daemon.probe_interval_seconds: 2.5 by default; 0 turns the probe off; otherwise 1..3600', async () => {
    expect(validateConfig(null).daemon.probe_interval_seconds).to.equal(2.5);
    expect((await parseConfig('daemon: {probe_interval_seconds: 0}')).daemon.probe_interval_seconds).to.equal(0);
    expect((await parseConfig('daemon: {probe_interval_seconds: 5}')).daemon.probe_interval_seconds).to.equal(5);
    for (const v of ['0.5', '-1', '4000', '"2"', 'null']) {
      expect(await bad(`daemon: {probe_interval_seconds: ${v}}`)).to.equal('config.yaml: daemon.probe_interval_seconds must be 0 (off) or a number between 1 and 3600');
    }
  });

  it('configdrive: the metadata-service fallback is off by default; on, with a checked base URL', async () => {
    expect(validateConfig(null).configdrive).to.deep.equal({ metadata_fallback: false, metadata_url: 'http://169.254.169.254' });
    const on = await parseConfig('configdrive: {metadata_fallback: true, metadata_url: "http://[fe80::a9fe:a9fe]/"}');
    expect(on.configdrive).to.deep.equal({ metadata_fallback: true, metadata_url: 'http://[fe80::a9fe:a9fe]' });
    expect(await bad('configdrive: {metadata_fallback: 1}')).to.match(/configdrive\.metadata_fallback must be true or false/);
    expect(await bad('configdrive: {metadata_url: "http://x/; reboot"}')).to.match(/configdrive\.metadata_url must be an http\(s\) base URL/);
    expect(await bad('configdrive: {url: x}')).to.match(/configdrive\.url is not a known key/);
  });

  it('rejects unknown keys at every level', async () => {
    expect(await bad('retyr: {}')).to.match(/^config\.yaml: \(top level\)\.retyr is not a known key/);
    expect(await bad('retry: {budget: 5}')).to.match(/retry\.budget is not a known key/);
    expect(await bad('events: {add: {run: [/bin/true], shell: true}}')).to.match(/events\.add\.shell is not a known key/);
    expect(await bad('events: {change: apply}')).to.match(/events\.change is not a known key/);
  });

  it('validates event policies', async () => {
    expect(await bad('events: {add: restart}')).to.match(/events\.add must be apply, ignore, reconcile or \{run: \[argv\.\.\.\]\}/);
    expect(await bad('events: {add: {run: []}}')).to.match(/events\.add\.run must be a non-empty list/);
    expect(await bad('events: {add: {run: "/bin/echo hi"}}')).to.match(/events\.add\.run must be a non-empty list/);
    expect(await bad('events: {add: {run: [/bin/echo, 3]}}')).to.match(/events\.add\.run\[1\]/);
    expect(await bad('events: {add: {run: [echo, hi]}}')).to.match(/events\.add\.run\[0\] must be an absolute path/);
    expect((await parseConfig('events: {link_down: ignore}')).events.link_down).to.equal('ignore');
  });

  it('turns YAML syntax errors, duplicate keys and non-mappings into one-line errors', async () => {
    expect(await bad('retry: [unclosed')).to.match(/^config\.yaml: invalid YAML/);
    expect(await bad('retry: {}\nretry: {}')).to.match(/invalid YAML/);
    expect(await bad('- a\n- b')).to.match(/must be a mapping/);
    expect(await bad('retry: 5')).to.match(/retry must be a mapping/);
  });

  it('uses the file name in errors and reports unreadable files', async () => {
    writeFileSync(join(dir, 'config.yaml'), 'retry: {max_ms: -1}\n');
    let err: unknown;
    try { await loadConfig(join(dir, 'config.yaml')); } catch (e) { err = e; }
    expect((err as Error).message).to.match(/^config\.yaml: retry\.max_ms must be a number between 1 and 600000$/);
    err = undefined;
    try { await loadConfig(dir); } catch (e) { err = e; } // a directory: EISDIR
    expect(err).to.be.instanceOf(UserError);
    expect(() => validateConfig({ retry: { initial_ms: 1 } }, 'x.yaml')).not.to.throw();
  });
});
