/** `hotplug handle`: queue one event from udev's environment (or flags) through the udev program. */
import type { Command } from 'commander';
import { runHook } from '../hook.js';
import { UserError } from '../util/errors.js';
import { action } from './common.js';

export function register(program: Command): void {
  program
    .command('handle')
    .description(
      `Queue one network hotplug event and make sure a worker handles it; returns at once.
Without options it reads udev's environment (ACTION, INTERFACE, DEVPATH, SEQNUM, ...); give
--action/--iface/--devpath to queue an event by hand. The values are validated, then handed to
the same sh program the installed udev rule runs (bin/hotplug-udev-hook).`,
    )
    .option('-u, --action <action>', 'add or remove')
    .option('-i, --iface <name>', 'interface name')
    .option('-d, --devpath <path>', 'sysfs devpath, e.g. /devices/virtual/net/eth1')
    .option('--mac <mac>', 'MAC address (read from sysfs for add when omitted)')
    .action(
      action(async (o: { action?: string; iface?: string; devpath?: string; mac?: string }) => {
        let env = process.env;
        if (o.action || o.iface || o.devpath) {
          if (!o.action || !o.iface || !o.devpath) throw new UserError('handle: give --action, --iface and --devpath together');
          env = { ACTION: o.action, INTERFACE: o.iface, DEVPATH: o.devpath, HOTPLUG_MAC: o.mac };
        }
        return runHook(env);
      }),
    );
}
