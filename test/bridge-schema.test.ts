/**
 * The bridge's replies are checked at the seam (bridge/schema.ts): for every call, a well-formed
 * reply passes as the API's type and one malformed reply is a one-line BridgeError of kind
 * 'BridgeProtocol' naming the call and the field. No Python: the raw replies are given here.
 */
import { expect } from 'chai';
import { checkReply, BridgeError, type CallName } from '../bridge/index.js';

const nic = {
  mac: '0a:00:00:00:00:02',
  device_number: '1',
  network_card: null,
  interface_id: 'eni-1',
  ipv4s: ['10.0.1.5'],
  ipv6s: [],
  subnet_ipv4_cidr: '10.0.1.0/24',
  subnet_ipv6_cidrs: [],
  ipv4_prefixes: [],
  ipv6_prefixes: [],
};
const summary = {
  datasource: 'DataSourceEc2Local',
  dsname: 'Ec2Local',
  instance_id: 'i-1',
  platform: 'ec2',
  subplatform: 'metadata (http://169.254.169.254)',
  cloud_name: 'aws',
  macs: ['0a:00:00:00:00:02'],
  primary_mac: '0a:00:00:00:00:01',
  nics: { '0a:00:00:00:00:02': nic },
  hotplug: { enabled: true, reason: 'yes' },
  rejected_nics: {},
  rejected_entries: {},
};
const netcfg = { version: 2, ethernets: { eth1: { match: { macaddress: '0a:00:00:00:00:02' }, 'set-name': 'eth1', dhcp4: true } } };
const interfaces = [{ name: 'eth1', mac: '0a:00:00:00:00:02', id: 'eth1' }];

/** A well-formed reply per call, and one way to break it (the field the error must name). */
const cases: Record<CallName, { good: Record<string, unknown>; bad: (r: any) => void; field: string }> = {
  open_instance: { good: { obj_pkl: '/x/obj.pkl', summary, stack: { renderer: 'eni', activator: 'IfUpDownActivator' } }, bad: (r) => delete r.stack, field: 'stack' },
  summary: { good: { summary }, bad: (r) => (r.summary.instance_id = 7), field: 'summary.instance_id' },
  hotplug_state: { good: { enabled: true, reason: 'r' }, bad: (r) => (r.enabled = 'yes'), field: 'reply.enabled' },
  network_config: { good: { network_config: netcfg, interfaces }, bad: (r) => (r.interfaces[0].mac = 5), field: 'interfaces[0].mac' },
  refresh: { good: { duration_ms: 12, summary, network_config: netcfg, interfaces }, bad: (r) => (r.network_config = null), field: 'network_config' },
  store: { good: { obj_pkl: '/x/obj.pkl', summary }, bad: (r) => (r.summary.macs = 'x'), field: 'summary.macs' },
  preview: {
    good: { renderer: 'Renderer', network_config: netcfg, files: [{ path: '/etc/x', content: 'a', current: null, changed: true }], interfaces },
    bad: (r) => delete r.files[0].changed,
    field: 'files[0].changed',
  },
  apply_network: { good: { failed: false, duration_ms: 30, interfaces }, bad: (r) => delete r.interfaces, field: 'interfaces' },
  bring_down: { good: { done: true, activator: 'IfUpDownActivator' }, bad: (r) => delete r.done, field: 'done' },
  bring_up: { good: { results: { eth1: true }, activator: 'IfUpDownActivator', durations_ms: { eth1: 5 } }, bad: (r) => (r.results.eth1 = 'true'), field: 'results["eth1"]' },
  refresh_network: { good: { supported: true, duration_ms: 3, summary, network_config: netcfg, interfaces }, bad: (r) => delete r.duration_ms, field: 'duration_ms' },
  rederive: { good: { network_config: netcfg, summary, interfaces }, bad: (r) => (r.summary.nics['0a:00:00:00:00:02'].ipv4s = '10.0.1.5'), field: 'summary.nics["0a:00:00:00:00:02"].ipv4s' },
  cloud_config: { good: { present: true, config: { daemon: { poll_interval_seconds: 5 } }, type: 'dict' }, bad: (r) => (r.config = ['a']), field: 'config' },
  probe_macs: { good: { supported: true, macs: ['0a:00:00:00:00:02'], others: [] }, bad: (r) => (r.macs = null), field: 'macs' },
  set_sources: { good: { md_fallback: 'http://169.254.169.254' }, bad: (r) => (r.md_fallback = 3), field: 'md_fallback' },
  probe_network: {
    good: { supported: true, changed: false, resource: 'meta-data/network/interfaces/macs/0a:00:00:00:00:02/local-ipv4s', requests: 1, not_modified: false, targets: 3 },
    bad: (r) => (r.requests = -1),
    field: 'requests',
  },
};

const clone = <T>(v: T): T => JSON.parse(JSON.stringify(v));

function protocolError(name: CallName, raw: unknown): BridgeError {
  try {
    checkReply(name, raw);
  } catch (e) {
    expect(e).to.be.instanceOf(BridgeError);
    return e as BridgeError;
  }
  throw new Error(`${name}: the malformed reply was accepted`);
}

describe('bridge: replies checked at the seam', () => {
  for (const [name, c] of Object.entries(cases) as [CallName, (typeof cases)[CallName]][]) {
    it(`${name}: a well-formed reply passes; a malformed one is BridgeProtocol naming ${c.field}`, () => {
      expect(() => checkReply(name, { ok: true, ...clone(c.good) })).to.not.throw();
      const raw = { ok: true, ...clone(c.good) };
      c.bad(raw);
      const e = protocolError(name, raw);
      expect(e.kind).to.equal('BridgeProtocol');
      expect(e.code).to.equal(1);
      expect(e.message.startsWith(`${name}: malformed reply: ${c.field} is not `), e.message).to.equal(true);
      expect(e.message).to.not.include('\n');
    });
  }

  it('the envelope: no reply or no boolean ok is BridgeProtocol; ok=false is the error Python named', () => {
    expect(protocolError('summary', null).kind).to.equal('BridgeProtocol');
    expect(protocolError('summary', 'x').kind).to.equal('BridgeProtocol');
    const e = protocolError('summary', { ok: 'yes', summary });
    expect([e.kind, e.message]).to.deep.equal(['BridgeProtocol', 'summary: malformed reply: ok is not a boolean (got string "yes")']);
    const py = protocolError('open_instance', { ok: false, kind: 'NoCache', error: 'no cached datasource at /x' });
    expect([py.kind, py.message]).to.deep.equal(['NoCache', 'no cached datasource at /x']);
    expect(protocolError('store', { ok: false }).kind).to.equal('BridgeError');
  });

  it('the API shapes: a missing config is null (network_config) or has no interfaces (rederive); unsupported refresh_network and probe_macs', () => {
    expect(checkReply('network_config', { ok: true, network_config: null })).to.equal(null);
    expect(checkReply('network_config', { ok: true, network_config: netcfg, interfaces })).to.deep.equal({ network_config: netcfg, interfaces });
    const r = checkReply('rederive', { ok: true, network_config: null, summary, interfaces: [] });
    expect([r.network_config, r.interfaces]).to.deep.equal([null, []]);
    expect(checkReply('refresh_network', { ok: true, supported: false })).to.deep.equal({ supported: false });
    expect(checkReply('probe_macs', { ok: true, supported: false, macs: [] })).to.deep.equal({ supported: false, macs: [], others: [] });
    expect(checkReply('summary', { ok: true, summary })).to.deep.equal(summary);
    expect(checkReply('probe_network', { ok: true, supported: false })).to.deep.equal({ supported: false });
    expect(protocolError('probe_network', { ok: true, supported: true, changed: 'yes', resource: 'x', requests: 1, not_modified: false, targets: 1 }).message).to.include('changed is not a boolean');
    expect(protocolError('probe_network', { ok: true, supported: true, changed: true, resource: 'x', requests: 1.5, not_modified: false, targets: 1 }).message).to.include('requests is not a count');
  });

  it('ports (any datasource) and a static source are checked field by field', () => {
    const port = { mac: 'fa:16:3e:00:00:02', index: 1, name: 'eth1', dhcp4: false, dhcp6: false, ipv4: [{ address: '10.0.2.30', prefixlen: 24 }], ipv6: [], gateway4: '10.0.2.1', gateway6: null, routes: [{ dst: '10.0.9.0/24', gateway: '10.0.2.1' }] };
    const os = { ...summary, nics: {}, ports: { [port.mac]: port }, metadata_static: true, metadata_source: 'config drive /config-drive' };
    expect(checkReply('summary', { ok: true, summary: os })).to.deep.equal(os);
    const bad = clone(os) as any;
    bad.ports[port.mac].ipv4[0].prefixlen = '24';
    expect(protocolError('summary', { ok: true, summary: bad }).message).to.include('summary.ports["fa:16:3e:00:00:02"].ipv4[0].prefixlen is not a number');
    const bad2 = clone(os) as any;
    bad2.ports[port.mac].dhcp4 = 'no';
    expect(protocolError('summary', { ok: true, summary: bad2 }).message).to.include('.dhcp4 is not a boolean');
    expect(checkReply('probe_macs', { ok: true, supported: true, macs: [], others: [], static: true })).to.deep.equal({ supported: true, macs: [], others: [], static: true });
    expect(protocolError('probe_macs', { ok: true, supported: true, macs: [], static: 'yes' }).message).to.include('static is not a boolean');
  });
});
