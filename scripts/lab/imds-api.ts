/**
 * What the lab's metadata service and its control client (imds-control.ts) share: the faults it
 * can inject, the record it keeps of each request, and its statistics.
 */
export type FaultMode = 'hang' | 'truncate' | 'reset' | 'refuse-token' | 'slow' | `http${number}`;

export interface Fault {
  mode: FaultMode;
  /** Only requests whose path (with or without the version segment) starts with this. */
  pathPrefix?: string;
  /** Requests left to fault; absent = until cleared. */
  count?: number;
  /** For 'slow' (and 'hang' has none). */
  delayMs?: number;
}

export interface RequestRecord {
  t: number;
  method: string;
  path: string;
  status: number;
  ms: number;
  token: boolean;
  fault?: string;
}

export interface ImdsStats {
  total: number;
  tokenPuts: number;
  unauthorized: number;
  faultsInjected: number;
  byStatus: Record<string, number>;
  byPrefix: Record<string, number>;
  byPath: Record<string, number>;
  byVersion: Record<string, number>;
  since: string;
  answering: boolean;
  httpTokens: string;
  fault: Fault | null;
}

export const FAULT_MODES = ['hang', 'truncate', 'reset', 'refuse-token', 'slow', 'http<code>'];

export function validFault(f: Fault): string | null {
  if (!f || typeof f.mode !== 'string') return 'fault needs a mode';
  if (!/^(hang|truncate|reset|refuse-token|slow|http[1-5]\d\d)$/.test(f.mode)) {
    return `unknown fault mode ${f.mode} (one of ${FAULT_MODES.join(', ')})`;
  }
  if (f.count !== undefined && (!Number.isInteger(f.count) || f.count < 1)) return 'fault count must be >= 1';
  return null;
}
