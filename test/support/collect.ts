/**
 * One snapshot of an instance's network state, taken by a single python3 program run inside it
 * (one round trip, so it is cheap on a loaded machine): links, IPv4 addresses, rules and routes
 * (ip -json), the rendered ENI, DHCP clients and cloud-hotplug processes of the instance's
 * network namespace, ifupdown's state files, our JSON state, the queue, whether the apply lock is
 * held (read from /proc/locks: probing it with flock would take it, and a hook that saw it taken
 * would not start a worker), stray temp files, and whether obj.pkl unpickles.
 *
 * The caller provides `run` (argv → stdout) bound to the instance, e.g. the lab's exec.
 */
import { DHCP_CLIENT_RE } from '../../src/stack/dhcp-clients.js';

export interface ProcInfo {
  pid: number;
  argv: string[];
}

export interface IpAddrInfo {
  family: string;
  local: string;
  prefixlen: number;
}

export interface Snapshot {
  links: { ifname: string; address?: string; link_type?: string }[];
  addrs: { ifname: string; addr_info: IpAddrInfo[] }[];
  rules: { priority?: number; src?: string; srclen?: number; table?: string; protocol?: string | number }[];
  routes: { dst: string; gateway?: string; dev?: string; table?: string; protocol?: string | number; scope?: string; metric?: number }[];
  eni: string | null;
  /** DHCP clients, workers, daemons and python bridges in the instance's netns. */
  procs: ProcInfo[];
  /** /run/network/ifstate* by base name. */
  ifstate: Record<string, string | null>;
  /** /run/cloud-hotplug/*.json by name (raw text). */
  runJson: Record<string, string | null>;
  queue: string[];
  lockHeld: boolean;
  /** Temp files left by interrupted atomic writes in the directories we and cloud-init write. */
  tempFiles: string[];
  /** obj.pkl: unpickles with plain pickle (it is root-owned and ours), and what it holds. */
  objPkl: { ok: boolean; error?: string; sha256?: string; macs?: string[]; instanceId?: string };
  /** sha256 of the files asked for (null: absent). */
  hashes: Record<string, string | null>;
  /** Epoch ms inside the instance when taken. */
  time: number;
}

export const COLLECT_PY = String.raw`
import fcntl, glob, hashlib, json, os, pickle, subprocess, sys, time
def ipj(*a):
    r = subprocess.run(['ip', '-json', *a], capture_output=True, text=True)
    try:
        return json.loads(r.stdout or '[]')
    except ValueError:
        return []
def rd(p):
    try:
        with open(p, 'r', errors='replace') as f:
            return f.read()
    except (FileNotFoundError, NotADirectoryError):
        return None
out = {'time': int(time.time() * 1000)}
out['links'] = [{k: l.get(k) for k in ('ifname', 'address', 'link_type')} for l in ipj('link', 'show')]
out['addrs'] = [{'ifname': a['ifname'], 'addr_info': [{k: i.get(k) for k in ('family', 'local', 'prefixlen')} for i in a.get('addr_info', [])]} for a in ipj('-4', 'addr', 'show')]
out['rules'] = ipj('-4', 'rule', 'show')
out['routes'] = ipj('-4', 'route', 'show', 'table', 'all')
out['eni'] = rd('/etc/network/interfaces.d/50-cloud-init')
me = os.readlink('/proc/self/ns/net')
procs = []
for e in os.listdir('/proc'):
    if not e.isdigit() or int(e) == os.getpid():
        continue
    try:
        if os.readlink('/proc/%s/ns/net' % e) != me:
            continue
        with open('/proc/%s/cmdline' % e, 'rb') as f:
            argv = [x.decode('utf-8', 'replace') for x in f.read().split(b'\0') if x]
    except OSError:
        continue
    if not argv:
        continue
    prog = os.path.basename(argv[0])
    if prog in ('dhclient', 'dhcpcd', 'udhcpc') or any(a.endswith('/cli.js') or a.endswith('/hook.js') or 'pythonia' in a for a in argv):
        procs.append({'pid': int(e), 'argv': argv})
out['procs'] = procs
out['ifstate'] = {os.path.basename(p): rd(p) for p in sorted(glob.glob('/run/network/ifstate*'))}
run = '/run/cloud-hotplug'
out['runJson'] = {n: rd(os.path.join(run, n)) for n in sorted(os.listdir(run)) if n.endswith('.json') and not n.startswith('.')} if os.path.isdir(run) else {}
q = os.path.join(run, 'queue')
out['queue'] = sorted(os.listdir(q)) if os.path.isdir(q) else []
held = False
try:
    st = os.stat(os.path.join(run, 'apply.lock'))
    for line in open('/proc/locks'):
        f = line.split()
        if '->' in f or len(f) < 6 or f[1] != 'FLOCK':
            continue
        dev_ino = f[5].split(':')
        if len(dev_ino) == 3 and int(dev_ino[2]) == st.st_ino and os.makedev(int(dev_ino[0], 16), int(dev_ino[1], 16)) == st.st_dev:
            held = True
except FileNotFoundError:
    pass
out['lockHeld'] = held
tmps = []
for d in (run, q, '/etc/network/interfaces.d', '/var/lib/cloud/instance/', '/run/cloud-init'):
    try:
        for n in os.listdir(d):
            if n.startswith('.') and (n.endswith('.tmp') or n.startswith('.obj.pkl.') or n.startswith('.50-cloud-init.') or n.startswith('.instance-data')):
                tmps.append(os.path.join(d, n))
    except OSError:
        pass
out['tempFiles'] = tmps
o = {'ok': False}
try:
    raw = open('/var/lib/cloud/instance/obj.pkl', 'rb').read()
    o['sha256'] = hashlib.sha256(raw).hexdigest()
    ds = pickle.loads(raw)
    md = getattr(ds, 'metadata', None) or {}
    macs = sorted((((md.get('network') or {}).get('interfaces') or {}).get('macs') or {}).keys())
    o.update({'ok': True, 'macs': macs, 'instanceId': md.get('instance-id')})
except Exception as e:
    o['error'] = '%s: %s' % (type(e).__name__, e)
out['objPkl'] = o
hashes = {}
for p in sys.argv[1:]:
    try:
        with open(p, 'rb') as f:
            hashes[p] = hashlib.sha256(f.read()).hexdigest()
    except OSError:
        hashes[p] = None
out['hashes'] = hashes
sys.stdout.write(json.dumps(out))
`;

export type Runner = (argv: string[]) => Promise<{ exitCode: number; stdout: string; stderr: string }>;

export async function collect(run: Runner, hashFiles: string[] = []): Promise<Snapshot> {
  const r = await run(['/usr/bin/python3', '-c', COLLECT_PY, ...hashFiles]);
  if (r.exitCode !== 0) throw new Error(`state collector failed (exit ${r.exitCode}): ${r.stderr.trim().split('\n').slice(-3).join(' | ')}`);
  return JSON.parse(r.stdout) as Snapshot;
}

/** Interface a DHCP client serves: its `-pf /run/dhclient.<if>.pid`, else its last bare argument. */
export function dhcpIface(p: ProcInfo): string | undefined {
  const i = p.argv.indexOf('-pf');
  const m = i >= 0 ? /dhclient6?\.(.+)\.pid$/.exec(p.argv[i + 1] ?? '') : null;
  if (m) return m[1];
  const bare = p.argv.slice(1).filter((a, k, all) => !a.startsWith('-') && !(all[k - 1] ?? '').startsWith('-'));
  return bare[bare.length - 1];
}

export const isDhcpClient = (p: ProcInfo): boolean => DHCP_CLIENT_RE.test((p.argv[0] ?? '').split('/').pop() ?? '');
export const isWorker = (p: ProcInfo): boolean => p.argv.some((a) => a.endsWith('/cli.js')) && p.argv.includes('worker');
export const isPythonBridge = (p: ProcInfo): boolean => p.argv.some((a) => a.includes('pythonia') && a.endsWith('interface.py'));
