/**
 * Clients for QEMU's two JSON sockets: QMP (the monitor: hot-plug, events) and the guest
 * agent (qemu-guest-agent over virtio-serial: run commands in the guest).
 */
import { createConnection, type Socket } from 'node:net';
import { randomInt } from 'node:crypto';

type Json = Record<string, unknown>;

/** Line-delimited JSON over a unix socket; the guest agent may also send a 0xFF sync byte. */
class JsonSocket {
  private buf = '';
  private waiters: { pred: (m: Json) => boolean; resolve: (m: Json) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }[] = [];
  readonly backlog: Json[] = [];
  private closedErr: Error | null = null;

  constructor(private sock: Socket) {
    sock.setEncoding('utf8');
    sock.on('data', (d: string) => this.onData(d));
    const fail = (e: Error) => {
      this.closedErr = e;
      for (const w of this.waiters.splice(0)) {
        clearTimeout(w.timer);
        w.reject(e);
      }
    };
    sock.on('error', fail);
    sock.on('close', () => fail(new Error('socket closed')));
  }

  static connect(path: string, timeoutMs = 5000): Promise<JsonSocket> {
    return new Promise((resolve, reject) => {
      const s = createConnection(path);
      const t = setTimeout(() => {
        s.destroy();
        reject(new Error(`connect ${path}: timed out`));
      }, timeoutMs);
      s.once('connect', () => {
        clearTimeout(t);
        resolve(new JsonSocket(s));
      });
      s.once('error', (e) => {
        clearTimeout(t);
        reject(new Error(`connect ${path}: ${e.message}`));
      });
    });
  }

  private onData(d: string): void {
    this.buf += d.replace(/[\xff\ufffd]/g, "");
    let nl: number;
    while ((nl = this.buf.indexOf('\n')) >= 0) {
      const line = this.buf.slice(0, nl).trim();
      this.buf = this.buf.slice(nl + 1);
      if (!line) continue;
      let m: Json;
      try {
        m = JSON.parse(line) as Json;
      } catch {
        continue;
      }
      const i = this.waiters.findIndex((w) => w.pred(m));
      if (i >= 0) {
        const [w] = this.waiters.splice(i, 1);
        clearTimeout(w!.timer);
        w!.resolve(m);
      } else {
        this.backlog.push(m);
        if (this.backlog.length > 1000) this.backlog.shift();
      }
    }
  }

  wait(pred: (m: Json) => boolean, timeoutMs: number, what: string): Promise<Json> {
    const i = this.backlog.findIndex(pred);
    if (i >= 0) return Promise.resolve(this.backlog.splice(i, 1)[0]!);
    if (this.closedErr) return Promise.reject(this.closedErr);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w.timer !== timer);
        reject(new Error(`${what}: no answer in ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiters.push({ pred, resolve, reject, timer });
    });
  }

  send(obj: Json): void {
    this.sock.write(JSON.stringify(obj) + '\n');
  }

  close(): void {
    this.sock.destroy();
  }
}

export class QmpError extends Error {}

/** QEMU Machine Protocol. Commands are serialized (one in flight), events are kept in a backlog. */
export class Qmp {
  private constructor(private js: JsonSocket) {}

  static async connect(path: string, timeoutMs = 5000): Promise<Qmp> {
    const js = await JsonSocket.connect(path, timeoutMs);
    await js.wait((m) => 'QMP' in m, timeoutMs, 'QMP greeting');
    const q = new Qmp(js);
    await q.cmd('qmp_capabilities');
    return q;
  }

  async cmd<T = unknown>(execute: string, args?: Json, timeoutMs = 10_000): Promise<T> {
    const id = `c${randomInt(1e9)}`;
    this.js.send(args ? { execute, arguments: args, id } : { execute, id });
    const m = await this.js.wait((r) => r.id === id, timeoutMs, `QMP ${execute}`);
    if (m.error) {
      const e = m.error as { class?: string; desc?: string };
      throw new QmpError(`QMP ${execute}: ${e.class ?? 'Error'}: ${e.desc ?? JSON.stringify(e)}`);
    }
    return m.return as T;
  }

  /** Wait for an event (already received ones count) matching name and `pred` on its data. */
  event(name: string, pred: (data: Json) => boolean = () => true, timeoutMs = 30_000): Promise<Json> {
    return this.js.wait((m) => m.event === name && pred((m.data ?? {}) as Json), timeoutMs, `QMP event ${name}`);
  }

  close(): void {
    this.js.close();
  }
}

export interface ExecResult {
  exitCode: number;
  stdout: string;
  stderr: string;
  /** True when the command was still running at the timeout (then exitCode is 124). */
  timedOut: boolean;
}

/** qemu-guest-agent: a fresh connection per call, synchronized with guest-sync-delimited. */
export class GuestAgent {
  constructor(private path: string) {}

  private async session<T>(fn: (call: (execute: string, args?: Json, timeoutMs?: number) => Promise<unknown>) => Promise<T>, syncTimeoutMs: number): Promise<T> {
    const js = await JsonSocket.connect(this.path);
    try {
      const id = randomInt(1, 2 ** 31);
      js.send({ execute: 'guest-sync-delimited', arguments: { id } });
      await js.wait((m) => m.return === id, syncTimeoutMs, 'guest agent sync');
      const call = async (execute: string, args?: Json, timeoutMs = 10_000) => {
        js.send(args ? { execute, arguments: args } : { execute });
        const m = await js.wait((r) => 'return' in r || 'error' in r, timeoutMs, `guest agent ${execute}`);
        if (m.error) {
          const e = m.error as { class?: string; desc?: string };
          throw new Error(`guest agent ${execute}: ${e.desc ?? e.class}`);
        }
        return m.return;
      };
      return await fn(call);
    } finally {
      js.close();
    }
  }

  /** True once the agent answers (the guest booted far enough to start qemu-guest-agent). */
  async ping(timeoutMs = 3000): Promise<boolean> {
    try {
      await this.session(async (call) => call('guest-ping', undefined, timeoutMs), timeoutMs);
      return true;
    } catch {
      return false;
    }
  }

  /** Run argv in the guest (no shell unless you ask for one), capturing output. */
  async exec(argv: string[], opts: { timeoutMs?: number; input?: string; env?: string[] } = {}): Promise<ExecResult> {
    const timeoutMs = opts.timeoutMs ?? 60_000;
    return this.session(async (call) => {
      const args: Json = { path: argv[0], arg: argv.slice(1), 'capture-output': true };
      if (opts.input !== undefined) args['input-data'] = Buffer.from(opts.input).toString('base64');
      args.env = opts.env ?? ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', 'LANG=C.UTF-8'];
      const { pid } = (await call('guest-exec', args)) as { pid: number };
      const end = Date.now() + timeoutMs;
      let delay = 20;
      for (;;) {
        const st = (await call('guest-exec-status', { pid })) as { exited: boolean; exitcode?: number; signal?: number; 'out-data'?: string; 'err-data'?: string };
        if (st.exited) {
          return {
            exitCode: st.exitcode ?? (st.signal ? 128 + st.signal : 125),
            stdout: Buffer.from(st['out-data'] ?? '', 'base64').toString('utf8'),
            stderr: Buffer.from(st['err-data'] ?? '', 'base64').toString('utf8'),
            timedOut: false,
          };
        }
        if (Date.now() > end) return { exitCode: 124, stdout: '', stderr: `timed out after ${timeoutMs} ms`, timedOut: true };
        await new Promise((r) => setTimeout(r, delay));
        delay = Math.min(delay * 2, 250);
      }
    }, 5000);
  }
}
