/**
 * A load generator in its own process: `concurrency` closed-loop workers sending through one
 * mode (see load-modes.ts) for a warm-up, then a measured window. Reports requests per second,
 * client CPU per request (process.cpuUsage over the window), latency percentiles, errors and
 * how answers spread over the upstreams.
 *
 * Failover runs also SIGKILL one upstream during the window and watch, through undici's
 * diagnostics channels, when requests stop being created for its origin.
 */
import { subscribe } from 'node:diagnostics_channel';
import { childConfig, failChild, toParent, toParentFlushed } from './child.js';
import { createSender, type LoadMode } from './load-modes.js';
import { groupCpuUs, type ObservedProcess } from './proc-cpu.js';
import { SampleBuffer, summarize, type LatencySummary } from './stats.js';
import type { Target } from './upstreams.js';

export interface LoadSpec {
  readonly label: string;
  readonly mode: LoadMode;
  readonly service: string;
  readonly targets: readonly Target[];
  readonly concurrency: number;
  readonly connections: number;
  readonly warmupMs: number;
  readonly durationMs: number;
  /** Stops the window early once this many requests completed in it. */
  readonly maxRequests: number;
  readonly timeoutMs: number;
  /** Discovery runs: keep sending until the parent says `stop`; no window. */
  readonly untilStopped?: boolean;
  readonly kill?: { readonly pid: number; readonly port: number; readonly afterMs: number };
  /** Other processes whose CPU over the window is reported per request (upstreams, proxy). */
  readonly observe?: readonly ObservedProcess[];
}

export interface FailoverResult {
  /** Requests that failed (rejected, or non-200) from the kill to the end of the window. */
  readonly failedAfterKill: number;
  /** Requests created for the killed upstream's origin after the kill (first tries and retries). */
  readonly attemptsAfterKill: number;
  /** From the kill to the last request created for the killed upstream (0: none after the kill). */
  readonly lastAttemptAfterKillMs: number;
  /** Window time left after the kill: a last attempt close to it means it never stopped. */
  readonly observedAfterKillMs: number;
}

export interface LoadResult {
  readonly label: string;
  readonly requests: number;
  readonly errors: number;
  readonly errorKinds: Record<string, number>;
  readonly elapsedMs: number;
  readonly rps: number;
  readonly cpuUs: number;
  readonly cpuPerReqUs: number;
  /** CPU per request of the observed processes over the window, per group (microseconds). */
  readonly otherCpuPerReqUs: Record<string, number>;
  readonly latency: LatencySummary;
  readonly perTarget: Record<string, number>;
  readonly rssMb: number;
  readonly failover?: FailoverResult;
}

const spec = childConfig<LoadSpec>();

async function main(): Promise<void> {
  const sender = createSender(spec.mode, {
    service: spec.service,
    targets: spec.targets,
    connections: spec.connections,
    timeoutMs: spec.timeoutMs,
  });
  let stop = false;
  let measuring = false;
  let requests = 0;
  let errors = 0;
  const errorKinds: Record<string, number> = {};
  const perTarget: Record<string, number> = {};
  const latencies = new SampleBuffer();
  let killAt = Number.NaN;
  let failedAfterKill = 0;
  let windowDone: () => void = () => {};
  const windowClosed = new Promise<void>((resolve) => (windowDone = resolve));

  const worker = async () => {
    while (!stop) {
      const started = performance.now();
      let ok = true;
      try {
        const body = await sender.send();
        if (measuring) perTarget[body] = (perTarget[body] ?? 0) + 1;
      } catch (err) {
        ok = false;
        if (measuring) {
          errors++;
          const kind = (err as { code?: string })?.code ?? (err as Error)?.message ?? 'error';
          errorKinds[kind] = (errorKinds[kind] ?? 0) + 1;
        }
        if (started >= killAt || performance.now() >= killAt) failedAfterKill++;
      }
      if (measuring) {
        const ended = performance.now();
        latencies.push(ended - started);
        if (ok) requests++;
        if (requests + errors >= spec.maxRequests) windowDone();
      }
    }
  };
  const workers = Array.from({ length: spec.concurrency }, worker);

  if (spec.untilStopped) {
    toParent({ type: 'started' });
    await new Promise<void>((resolve) => {
      process.on('message', (message: { type?: string }) => {
        if (message?.type === 'stop') resolve();
      });
    });
    stop = true;
    await Promise.allSettled(workers);
    await sender.close();
    await toParentFlushed({ type: 'stopped' });
    return;
  }

  await sleep(spec.warmupMs);

  // Failover: watch requests created for the upstream that will be killed.
  const killedOrigin = spec.kill ? `http://127.0.0.1:${spec.kill.port}` : undefined;
  let attemptsAfterKill = 0;
  let lastAttemptAt = Number.NaN;
  const onCreate = (message: unknown) => {
    const request = (message as { request?: { origin?: unknown } }).request;
    if (String(request?.origin) !== killedOrigin || !(performance.now() >= killAt)) return;
    attemptsAfterKill++;
    lastAttemptAt = performance.now();
  };
  if (spec.kill) subscribe('undici:request:create', onCreate);

  const observed = spec.observe ?? [];
  const other0 = groupCpuUs(observed);
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  measuring = true;
  let killTimer: NodeJS.Timeout | undefined;
  if (spec.kill) {
    const kill = spec.kill;
    killTimer = setTimeout(() => {
      killAt = performance.now();
      process.kill(kill.pid, 'SIGKILL');
    }, kill.afterMs);
  }
  const windowTimer = setTimeout(windowDone, spec.durationMs);
  await windowClosed;
  measuring = false;
  const elapsedMs = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  const other1 = groupCpuUs(observed);
  clearTimeout(windowTimer);
  if (killTimer) clearTimeout(killTimer);
  stop = true;
  await Promise.allSettled(workers);
  const cpuUs = cpu.user + cpu.system;
  const done = requests + errors;
  const result: LoadResult = {
    label: spec.label,
    requests,
    errors,
    errorKinds,
    elapsedMs,
    rps: (requests / elapsedMs) * 1000,
    cpuUs,
    cpuPerReqUs: done > 0 ? cpuUs / done : Number.NaN,
    otherCpuPerReqUs: Object.fromEntries(
      Object.keys(other1).map((group) => [group, done > 0 ? (other1[group]! - (other0[group] ?? 0)) / done : Number.NaN]),
    ),
    latency: summarize(latencies.values()),
    perTarget,
    rssMb: process.memoryUsage().rss / 2 ** 20,
    ...(spec.kill
      ? {
          failover: {
            failedAfterKill,
            attemptsAfterKill,
            lastAttemptAfterKillMs: Number.isNaN(lastAttemptAt) ? 0 : lastAttemptAt - killAt,
            observedAfterKillMs: t0 + elapsedMs - killAt,
          },
        }
      : {}),
  };
  await sender.close();
  await toParentFlushed({ type: 'result', result });
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

main().then(() => process.exit(0), failChild);
