/**
 * The daemon's listeners as one set: the unix socket (always), the FIFO and TCP (when enabled in
 * daemon.listeners), started, moved or restarted on a config reload, closed together, and
 * described for `status`. A FIFO or TCP listener that cannot start is reported (and logged), and
 * the daemon goes on with the others. vsock is not built (see the README).
 */
import type { ListenersConfig } from '../../config-daemon.js';
import { log } from '../../util/log.js';
import { oneLine } from '../../util/errors.js';
import { FifoListener } from './fifo.js';
import { TcpListener } from './tcp.js';
import { UnixListener } from './unix.js';
import type { Handlers, Listener } from './session.js';

type Optional = 'fifo' | 'tcp';

interface Slot {
  key: string;
  state: 'listening' | 'failed' | 'disabled';
  listener?: Listener;
  error?: string;
}

export class ListenerSet {
  unix: UnixListener | undefined;
  private readonly slots = new Map<Optional, Slot>([
    ['fifo', { key: '', state: 'disabled' }],
    ['tcp', { key: '', state: 'disabled' }],
  ]);

  constructor(private readonly handlersFor: (via: string) => Handlers) {}

  async listenUnix(path: string): Promise<void> {
    const l = new UnixListener(path, this.handlersFor('socket'));
    await l.listen();
    this.unix = l;
  }

  /** Move the unix socket: the new one first, then drop the old one. */
  async moveUnix(path: string): Promise<void> {
    const fresh = new UnixListener(path, this.handlersFor('socket'));
    await fresh.listen();
    const prev = this.unix;
    this.unix = fresh;
    await prev?.close();
  }

  /** Start, restart or stop the FIFO and TCP listeners to match `cfg`. */
  async configure(cfg: ListenersConfig): Promise<void> {
    for (const kind of ['fifo', 'tcp'] as const) {
      const want = cfg[kind];
      const key = want.enabled ? JSON.stringify(want) : '';
      const slot = this.slots.get(kind)!;
      if (slot.key === key && slot.state !== 'failed') continue;
      await slot.listener?.close().catch(() => {});
      const next: Slot = { key, state: 'disabled' };
      if (want.enabled) {
        const l: Listener =
          kind === 'fifo'
            ? new FifoListener(cfg.fifo.path, this.handlersFor('fifo'), { maxLine: 64 * 1024 })
            : new TcpListener(
                {
                  address: cfg.tcp.address,
                  port: cfg.tcp.port,
                  tokenFile: cfg.tcp.token_file,
                  maxLine: cfg.tcp.max_request_bytes,
                  ratePerSecond: cfg.tcp.requests_per_second,
                  readOnlyWithoutToken: cfg.tcp.read_only_without_token,
                  maxConnections: cfg.tcp.max_connections,
                },
                this.handlersFor('tcp'),
              );
        try {
          await l.listen();
          next.state = 'listening';
          next.listener = l;
          log('info', `${kind} listener started`, { address: l.address });
        } catch (e) {
          next.state = 'failed';
          next.error = oneLine(e);
          log('error', `${kind} listener not started`, { error: next.error });
        }
      }
      this.slots.set(kind, next);
    }
  }

  /** A listener by kind (tests, status). */
  get(kind: Optional): Listener | undefined {
    return this.slots.get(kind)?.listener;
  }

  async close(): Promise<void> {
    for (const s of this.slots.values()) await s.listener?.close().catch(() => {});
    for (const k of this.slots.keys()) this.slots.set(k, { key: '', state: 'disabled' });
    await this.unix?.close();
  }

  info(): Record<string, unknown>[] {
    const out: Record<string, unknown>[] = [];
    if (this.unix) out.push({ kind: 'unix', state: 'listening', address: this.unix.address, ...this.unix.stats });
    for (const [kind, s] of this.slots) out.push({ kind, state: s.state, address: s.listener?.address ?? null, ...(s.error ? { error: s.error } : {}), ...(s.listener?.stats ?? {}) });
    return out;
  }
}
