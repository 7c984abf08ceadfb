/**
 * The throughput comparison in one load process: every mode's client is built once, warmed up,
 * then the modes take turns in short slices, round after round, in a rotating order. A shared
 * machine drifts on the scale of seconds; slices of a few hundred milliseconds next to each other
 * see nearly the same machine, so per-round ratios are far steadier than whole runs minutes apart.
 *
 * Each slice: `concurrency` closed-loop workers for `sliceMs`, then they drain; CPU of this
 * process (process.cpuUsage) and of the observed processes (/proc) from start to drain.
 */
import { childConfig, failChild, toParentFlushed } from './child.js';
import { createSender, type LoadMode, type Sender } from './load-modes.js';
import { groupCpuUs, type ObservedProcess } from './proc-cpu.js';
import { SampleBuffer, summarize, type LatencySummary } from './stats.js';
import type { Target } from './upstreams.js';

export interface InterleaveSpec {
  readonly modes: ReadonlyArray<{
    readonly label: string;
    readonly mode: LoadMode;
    /** Extra processes observed in this mode's slices only (nginx). */
    readonly observe?: readonly ObservedProcess[];
  }>;
  readonly service: string;
  readonly targets: readonly Target[];
  readonly concurrency: number;
  readonly connections: number;
  /** Per mode, before the first round. */
  readonly warmupMs: number;
  readonly sliceMs: number;
  readonly rounds: number;
  readonly timeoutMs: number;
  /** Observed in every slice (the upstreams). */
  readonly observe: readonly ObservedProcess[];
}

export interface Slice {
  readonly round: number;
  readonly requests: number;
  readonly errors: number;
  readonly elapsedMs: number;
  readonly rps: number;
  readonly cpuPerReqUs: number;
  readonly otherCpuPerReqUs: Record<string, number>;
}

export interface ModeResult {
  readonly label: string;
  readonly slices: Slice[];
  readonly latency: LatencySummary;
  readonly errorKinds: Record<string, number>;
}

interface Drive {
  readonly requests: number;
  readonly errors: number;
  readonly elapsedMs: number;
  readonly cpuUs: number;
  readonly other: Record<string, number>;
}

const spec = childConfig<InterleaveSpec>();

async function drive(
  sender: Sender,
  ms: number,
  observe: readonly ObservedProcess[],
  latencies: SampleBuffer | undefined,
  errorKinds: Record<string, number>,
): Promise<Drive> {
  let stop = false;
  let requests = 0;
  let errors = 0;
  const worker = async () => {
    while (!stop) {
      const started = performance.now();
      try {
        await sender.send();
        requests++;
      } catch (err) {
        errors++;
        const kind = (err as { code?: string })?.code ?? (err as Error)?.message ?? 'error';
        errorKinds[kind] = (errorKinds[kind] ?? 0) + 1;
      }
      latencies?.push(performance.now() - started);
    }
  };
  const other0 = groupCpuUs(observe);
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const workers = Array.from({ length: spec.concurrency }, worker);
  await new Promise((resolve) => setTimeout(resolve, ms));
  stop = true;
  await Promise.all(workers);
  const elapsedMs = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  const other1 = groupCpuUs(observe);
  const other: Record<string, number> = {};
  for (const group of Object.keys(other1)) other[group] = other1[group]! - (other0[group] ?? 0);
  return { requests, errors, elapsedMs, cpuUs: cpu.user + cpu.system, other };
}

async function main(): Promise<void> {
  const modes = spec.modes.map((m) => ({
    ...m,
    sender: createSender(m.mode, {
      service: spec.service,
      targets: spec.targets,
      connections: spec.connections,
      timeoutMs: spec.timeoutMs,
    }),
    observed: [...spec.observe, ...(m.observe ?? [])],
    latencies: new SampleBuffer(),
    errorKinds: {} as Record<string, number>,
    slices: [] as Slice[],
  }));
  for (const m of modes) await drive(m.sender, spec.warmupMs, [], undefined, {});
  for (let round = 0; round < spec.rounds; round++) {
    for (let k = 0; k < modes.length; k++) {
      const m = modes[(k + round) % modes.length]!;
      const d = await drive(m.sender, spec.sliceMs, m.observed, m.latencies, m.errorKinds);
      const done = d.requests + d.errors;
      m.slices.push({
        round,
        requests: d.requests,
        errors: d.errors,
        elapsedMs: d.elapsedMs,
        rps: (d.requests / d.elapsedMs) * 1000,
        cpuPerReqUs: done > 0 ? d.cpuUs / done : Number.NaN,
        otherCpuPerReqUs: Object.fromEntries(
          Object.entries(d.other).map(([group, us]) => [group, done > 0 ? us / done : Number.NaN]),
        ),
      });
    }
  }
  const results: ModeResult[] = modes.map((m) => ({
    label: m.label,
    slices: m.slices,
    latency: summarize(m.latencies.values()),
    errorKinds: m.errorKinds,
  }));
  for (const m of modes) await m.sender.close();
  await toParentFlushed({ type: 'result', results });
}

main().then(() => process.exit(0), failChild);
