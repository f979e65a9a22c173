/**
 * The daemon left idle for N minutes in a lab of its own, after the bench's jobs (issue 16 goal 4:
 * PSS ≤ 60 MB after 10 minutes idle, RSS beside it). Alone: PSS divides shared pages among the
 * processes that map them, so a second daemon beside the other labs would lower every lab's PSS.
 * PSS and RSS of node + python are sampled once a minute; the last sample, at N minutes or later,
 * is what the goal judges.
 */
import { LabCtx } from './lib/labctx.js';
import { RssSampler } from './lib/watch.js';
import type { Contender } from './contenders.js';

export interface LongIdleSample {
  /** Seconds since the daemon was ready. */
  s: number;
  pssMb: number;
  rssMb: number;
  pssByComm: Record<string, number>;
}

export interface LongIdle {
  minutes: number;
  lab: string;
  samples: LongIdleSample[];
  error?: string;
}

export class LongIdleLab {
  private ctx: LabCtx;
  private t0 = 0;
  private timer: NodeJS.Timeout | null = null;
  private samples: LongIdleSample[] = [];
  private error: string | undefined;

  constructor(
    readonly name: string,
    cloud: 'ec2' | 'openstack' | 'configdrive',
    readonly minutes: number,
    private log: (s: string) => void,
  ) {
    this.ctx = new LabCtx(name, 'generic', cloud);
  }

  /** Up the lab, install and start the daemon as the bench's daemon contender does, start sampling. */
  async start(daemon: Contender): Promise<void> {
    try {
      this.log(`${this.name}: up, the daemon left idle for ${this.minutes} min`);
      await this.ctx.up();
      await daemon.setup(this.ctx);
      this.t0 = Date.now();
      this.sample();
      this.timer = setInterval(() => this.sample(), 60_000);
    } catch (e) {
      this.error = (e as Error).message.split('\n')[0];
      this.log(`${this.name}: ${this.error}`);
    }
  }

  private sample(): void {
    const m = new RssSampler(this.ctx).memNow();
    if (m.procs) this.samples.push({ s: Math.round((Date.now() - this.t0) / 1000), pssMb: m.pssMb, rssMb: m.rssMb, pssByComm: m.pssByComm });
  }

  /** Wait until N minutes have passed since the daemon was ready, take the last sample, down the lab. */
  async finish(): Promise<LongIdle> {
    try {
      if (!this.error) {
        for (;;) {
          const left = this.t0 + this.minutes * 60_000 - Date.now();
          if (left <= 0) break;
          this.log(`${this.name}: idle ${Math.round((Date.now() - this.t0) / 1000)} s, ${Math.ceil(left / 1000)} s to go`);
          await new Promise((r) => setTimeout(r, Math.min(left, 60_000)));
        }
        if (this.timer) clearInterval(this.timer);
        this.sample();
      }
    } finally {
      if (this.timer) clearInterval(this.timer);
      await this.ctx.down();
    }
    return { minutes: this.minutes, lab: this.name, samples: this.samples, ...(this.error ? { error: this.error } : {}) };
  }
}
