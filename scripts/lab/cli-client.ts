/** `lab client …`: commands run from the client host outside the instance's subnets. */
import type { Command } from 'commander';
import * as lab from './index.js';
import { addExec, int, nameOpt } from './cli-common.js';

export function registerClient(program: Command): void {
  const cl = program.command('client').enablePositionalOptions().description(`the client host outside the instance's subnets (${lab.CLIENT_ADDR}, routed by the cloud)`);
  addExec(cl, 'on the client host', lab.clientExec);
  cl.command('ping')
    .description('ICMP echo from the client (exit 1 if no reply)')
    .argument('<ip>')
    .addOption(nameOpt())
    .option('--count <n>', 'echo requests', int, 1)
    .option('--wait <ms>', 'wait per reply', int, 1000)
    .action(async (ip, o) => {
      const r = await lab.clientPing(ip, { name: o.name, count: o.count, waitMs: o.wait });
      process.stdout.write(`${ip}: ${r.received}/${r.sent} replies\n`);
      if (!r.received) process.exitCode = 1;
    });
  cl.command('tcp')
    .description('TCP connect from the client and print what the server sends (exit 1 on failure)')
    .argument('<ip>')
    .argument('<port>', 'port', int)
    .addOption(nameOpt())
    .option('--timeout <ms>', 'give up after', int, 3000)
    .action(async (ip, port, o) => {
      const r = await lab.clientTcp(ip, port, { name: o.name, timeoutMs: o.timeout });
      if (r.ok) process.stdout.write(r.data);
      else {
        process.stderr.write(`lab: tcp ${ip}:${port}: ${r.error}\n`);
        process.exitCode = 1;
      }
    });
}
