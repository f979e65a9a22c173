/**
 * The lab's fake EC2 instance metadata service, as a process: the server (imds-server.ts: IMDSv2
 * tokens, request statistics, lag, faults) on 169.254.169.254:80 inside the cloud netns, serving
 * the model file, and a control API (HTTP over a unix socket in the lab dir) that exposes stats,
 * reset, reload, stop/start answering and faults. Run as: node imds.js --model F --socket S [--address A --port P]
 */
import http from 'node:http';
import { unlinkSync } from 'node:fs';
import { validFault, type Fault } from './imds-api.js';
import { Imds } from './imds-server.js';

export { FAULT_MODES, validFault, type Fault, type FaultMode, type ImdsStats, type RequestRecord } from './imds-api.js';

// ---------------------------------------------------------------------------------------------
// Control API over the unix socket.

function readBody(req: http.IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    let s = '';
    req.setEncoding('utf8');
    req.on('data', (c) => (s += c));
    req.on('end', () => resolve(s));
    req.on('error', reject);
  });
}

function startControl(imds: Imds, sockPath: string): http.Server {
  try {
    unlinkSync(sockPath);
  } catch {
    /* none */
  }
  const srv = http.createServer(async (req, res) => {
    const json = (code: number, v: unknown) => {
      const b = JSON.stringify(v);
      res.writeHead(code, { 'Content-Type': 'application/json', 'Content-Length': String(Buffer.byteLength(b)) });
      res.end(b);
    };
    try {
      const url = new URL(req.url ?? '/', 'http://control');
      const key = `${req.method} ${url.pathname}`;
      switch (key) {
        case 'GET /health':
          return json(200, { ok: true, pid: process.pid });
        case 'GET /stats':
          return json(200, imds.snapshot());
        case 'POST /stats/reset':
          imds.resetStats();
          return json(200, imds.snapshot());
        case 'GET /requests':
          return json(200, imds.recent(Number(url.searchParams.get('since') ?? 0)));
        case 'POST /reload':
          imds.reload(true);
          return json(200, { ok: true });
        case 'POST /stop':
          await imds.stop();
          return json(200, imds.snapshot());
        case 'POST /start':
          await imds.start();
          return json(200, imds.snapshot());
        case 'PUT /fault': {
          const f = JSON.parse(await readBody(req)) as Fault;
          const err = validFault(f);
          if (err) return json(400, { error: err });
          imds.setFault(f);
          return json(200, imds.snapshot());
        }
        case 'DELETE /fault':
          imds.setFault(null);
          return json(200, imds.snapshot());
        default:
          return json(404, { error: `no control route ${key}` });
      }
    } catch (e) {
      return json(500, { error: (e as Error).message });
    }
  });
  srv.listen(sockPath);
  return srv;
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const opt = (k: string, d?: string) => {
    const i = args.indexOf(`--${k}`);
    const v = i >= 0 ? args[i + 1] : d;
    if (v === undefined) throw new Error(`imds: --${k} is required`);
    return v;
  };
  const imds = new Imds(opt('model'), opt('address', '169.254.169.254'), Number(opt('port', '80')));
  imds.reload(true);
  const ctl = startControl(imds, opt('socket'));
  await imds.start();
  process.stderr.write(`imds: listening pid=${process.pid}\n`);
  const quit = () => {
    ctl.close();
    void imds.stop().finally(() => process.exit(0));
    setTimeout(() => process.exit(0), 500).unref();
  };
  process.on('SIGTERM', quit);
  process.on('SIGINT', quit);
}

if (process.argv[1] && import.meta.url === new URL(`file://${process.argv[1]}`).href) {
  main().catch((e) => {
    process.stderr.write(`imds: ${(e as Error).stack ?? e}\n`);
    process.exit(1);
  });
}
