import { cpus, freemem, loadavg, release, totalmem, type as osType } from 'node:os';

export interface MachineInfo {
  readonly cores: number;
  readonly cpuModel: string;
  readonly node: string;
  readonly v8: string;
  readonly os: string;
  readonly memoryGiB: number;
  readonly freeMemoryGiB: number;
  /** 1-, 5- and 15-minute load averages when the run started: a busy shared machine shows here. */
  readonly loadAverage: readonly number[];
}

export function machineInfo(): MachineInfo {
  const list = cpus();
  return {
    cores: list.length,
    cpuModel: list[0]?.model.trim() ?? 'unknown',
    node: process.version,
    v8: process.versions.v8,
    os: `${osType()} ${release()} ${process.arch}`,
    memoryGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    freeMemoryGiB: Math.round((freemem() / 2 ** 30) * 10) / 10,
    loadAverage: loadavg().map((l) => Math.round(l * 100) / 100),
  };
}
