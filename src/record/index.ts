/**
 * Everything the pipeline records, behind one interface: each handled event (log line, log file,
 * recent list), the last apply, and the interfaces it configured (so a remove knows the MAC behind
 * a name). The files live under /run/cloud-hotplug; `fileRecorder` writes them, tests use their own.
 * What a bridge session read from cloud-init's cache (instance.ts) is recorded by the session itself.
 */
import { recordEvent, type EventRecord } from './events.js';
import { recordApply, type LastApply } from './last-apply.js';
import { forgetInterface, loadKnown, rememberInterface, type KnownInterface, type KnownInterfaces } from './interfaces.js';

export type { EventRecord } from './events.js';
export type { LastApply } from './last-apply.js';
export type { KnownInterface, KnownInterfaces } from './interfaces.js';

export interface Recorder {
  event(rec: EventRecord): Promise<void>;
  apply(rec: LastApply): Promise<void>;
  /** The interfaces configured so far, by name. */
  interfaces(): Promise<KnownInterfaces>;
  remember(ifname: string, info: KnownInterface): Promise<void>;
  forget(ifname: string): Promise<void>;
}

export const fileRecorder: Recorder = {
  event: recordEvent,
  apply: recordApply,
  interfaces: () => loadKnown(),
  remember: async (ifname, info) => {
    await rememberInterface(ifname, info);
  },
  forget: async (ifname) => {
    await forgetInterface(ifname);
  },
};
