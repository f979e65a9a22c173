/**
 * The lab's API: a lab cloud in network namespaces running the real cloud-init in an
 * EC2-like instance. Used by the CLI (cli.ts), the integration tests and the benchmarks.
 * Every function takes `name` (default "lab"); state lives in /run/cloud-hotplug-lab/<name>/.
 * Only a façade: each part lives in a module of its own, and this list is the whole public API.
 */
export type { Fault, ImdsStats, RequestRecord } from './imds.js';
export type { LabMode, Attachment } from './state.js';
export type { MetadataModel, NicModel } from './metadata.js';
export type { FlowCount, SrcCheckCounters } from './fabric.js';
export { INSTANCE_ENV, type CloudInitStatus } from './instance.js';
export { restartNetworkManager, type LabStack } from './nm.js';
export { restartNetworkd } from './networkd.js';
export { labPaths, LAB_ROOT, NETNS_PREFIX, CLIENT_ADDR, CLIENT_CIDR, CLIENT_GATEWAY, CLIENT_ADDR6, subnetInfo } from './paths.js';
export { sleep } from './run.js';
export type { LabOptions } from './running.js';

export { up, resume, type UpOptions, type UpResult } from './up.js';
export { attach, attachMany, detach, type AttachOptions, type DetachOptions, type NicInfo } from './nics.js';
export { exec, instanceCommand, instanceRootPath, readFileInInstance, writeFileInInstance, type ExecOptions, type ExecResult } from './exec.js';
export {
  clientExec,
  clientPing,
  clientTcp,
  sourceCheck,
  resetSourceCheck,
  type ClientExecOptions,
  type PingResult,
  type TcpResult,
  type SourceCheck,
  type SourceCheckFlow,
} from './client.js';
export {
  showMetadata,
  addIp,
  removeIp,
  setUserdata,
  setLag,
  setHttpTokens,
  setNicMetadata,
  removeNicMetadata,
  imdsStop,
  imdsStart,
  imdsStats,
  imdsResetStats,
  imdsRequests,
  setFault,
  clearFault,
  type MetadataView,
} from './metadata-edits.js';
export { udevEvents, monotonicNow, waitForUdevEvent, parseMonitorLog, type UdevEvent } from './udev.js';
export { status, type LabStatus, type ProcStatus } from './status.js';
export { down, leftovers, listLabs, type DownResult } from './down.js';
