import { readFileSync } from 'node:fs';

/**
 * CPU time of other processes (upstreams, nginx), from /proc on Linux: so a run can say what the
 * whole system spent per request, not only the client. Resolution: one clock tick (10 ms).
 */

const TICK_US = 10_000; // USER_HZ is 100 on Linux

/** utime + stime of `pid` in microseconds, or undefined when unreadable (not Linux, process gone). */
export function processCpuUs(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may hold spaces and parentheses: fields restart after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const utime = Number(fields[11]);
    const stime = Number(fields[12]);
    return Number.isFinite(utime) && Number.isFinite(stime) ? (utime + stime) * TICK_US : undefined;
  } catch {
    return undefined;
  }
}

/** Direct children of `pid` (nginx workers of a master), from /proc. */
export function childPids(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8')
      .trim()
      .split(/\s+/)
      .filter(Boolean)
      .map(Number);
  } catch {
    return [];
  }
}

export interface ObservedProcess {
  /** What the process is, e.g. "upstreams" or "proxy": CPU is summed per group. */
  readonly group: string;
  readonly pid: number;
}

/** CPU per group now (microseconds); processes that cannot be read count 0. */
export function groupCpuUs(processes: readonly ObservedProcess[]): Record<string, number> {
  const sums: Record<string, number> = {};
  for (const p of processes) sums[p.group] = (sums[p.group] ?? 0) + (processCpuUs(p.pid) ?? 0);
  return sums;
}
