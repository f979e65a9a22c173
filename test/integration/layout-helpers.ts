/** For the rule-layout tests: ICMP echo from a chosen source address (a raw socket in python3: no ping binary needed) and docker0-like bridges with a container in its own netns. */
import { execa } from 'execa';

export const PING_PY = `
import json, os, select, socket, struct, sys, time
src, dst, wait_ms = sys.argv[1], sys.argv[2], int(sys.argv[3])
v6 = ':' in dst
s = socket.socket(socket.AF_INET6 if v6 else socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMPV6 if v6 else socket.IPPROTO_ICMP)
s.bind((src, 0))
ident = os.getpid() & 0xffff
def csum(b):
    if len(b) % 2: b += b'\\0'
    t = sum(struct.unpack('!%dH' % (len(b) // 2), b))
    t = (t >> 16) + (t & 0xffff)
    t += t >> 16
    return ~t & 0xffff
body = b'cloud-hotplug-19'
got = 0
# Up to 3 requests, as ping would send: a fresh link's neighbour discovery can take a second or two.
for seq in (1, 2, 3):
    if v6:
        pkt = struct.pack('!BBHHH', 128, 0, 0, ident, seq) + body  # the kernel fills in the ICMPv6 checksum
    else:
        hdr = struct.pack('!BBHHH', 8, 0, 0, ident, seq)
        pkt = struct.pack('!BBHHH', 8, 0, csum(hdr + body), ident, seq) + body
    s.sendto(pkt, (dst, 0))
    end = time.monotonic() + wait_ms / 1000
    while not got:
        left = end - time.monotonic()
        if left <= 0 or not select.select([s], [], [], left)[0]:
            break
        data, addr = s.recvfrom(4096)
        off = 0 if v6 else (data[0] & 0xf) * 4
        t, _, _, i, q = struct.unpack('!BBHHH', data[off:off + 8])
        if t == (129 if v6 else 0) and i == ident and addr[0] == dst:
            got = 1
    if got:
        break
print(json.dumps({'received': got}))
`;
/** Whether an echo request from `src` to `dst` (IPv4 or IPv6) sent in `netns` was answered. */
export async function pingFrom(netns: string, src: string, dst: string): Promise<boolean> {
  const out = (await execa('ip', ['netns', 'exec', netns, '/usr/bin/python3', '-c', PING_PY, src, dst, '2000'], { stdin: 'ignore', timeout: 30_000 })).stdout;
  return (JSON.parse(out) as { received: number }).received === 1;
}

const run = async (argv: string[]) => void (await execa(argv[0]!, argv.slice(1), { stdin: 'ignore', timeout: 20_000 }));

/**
 * A docker0-like bridge `name` in `netns` with `${v4}.1/16` and `${v6}::1/64`, and a container (the
 * netns `ctr`, created here: the caller deletes it) at `${v4}.2` / `${v6}::2` routing back through it.
 */
export async function makeBridge(netns: string, name: string, ctr: string, v4: string, v6: string): Promise<void> {
  const h = (...a: string[]) => run(['ip', '-n', netns, ...a]);
  const c = (...a: string[]) => run(['ip', '-n', ctr, ...a]);
  await run(['ip', 'netns', 'add', ctr]);
  await h('link', 'add', name, 'type', 'bridge');
  await h('link', 'add', `${name}-p`, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ctr);
  await h('link', 'set', `${name}-p`, 'master', name);
  await h('addr', 'add', `${v4}.1/16`, 'dev', name);
  await h('-6', 'addr', 'add', `${v6}::1/64`, 'dev', name, 'nodad');
  for (const dev of [name, `${name}-p`]) await h('link', 'set', dev, 'up');
  await c('link', 'set', 'lo', 'up');
  await c('addr', 'add', `${v4}.2/16`, 'dev', 'eth0');
  await c('-6', 'addr', 'add', `${v6}::2/64`, 'dev', 'eth0', 'nodad');
  await c('link', 'set', 'eth0', 'up');
  await c('route', 'add', 'default', 'via', `${v4}.1`);
  await c('-6', 'route', 'add', 'default', 'via', `${v6}::1`);
}
