/** Run parameters: the full run (`pnpm bench`) and the smoke run (`pnpm bench:smoke`). */

export interface ThroughputParams {
  readonly concurrency: number;
  /** Most sockets per upstream, for every mode. */
  readonly connections: number;
  readonly upstreamLatencyMs: number;
  /** Per mode, before the first round. */
  readonly warmupMs: number;
  /** Modes take turns in slices of this length, `rounds` times each. */
  readonly sliceMs: number;
  readonly rounds: number;
  readonly nginxWorkers: number | 'auto';
}

export interface DegradedParams {
  readonly concurrency: number;
  /** Latencies of the ten upstreams (the issue: 1, 4 x 10, 4 x 100, 1 x 1000 ms). */
  readonly tenLatencies: readonly number[];
  /** Five upstreams, one ten times slower. */
  readonly fiveLatencies: readonly number[];
  readonly warmupMs: number;
  readonly durationMs: number;
  readonly reps: number;
}

export interface FailoverParams {
  readonly concurrency: number;
  readonly upstreamLatencyMs: number;
  readonly warmupMs: number;
  readonly killAfterMs: number;
  readonly durationMs: number;
  readonly reps: number;
}

export interface DiscoveryParams {
  readonly trials: number;
  readonly concurrency: number;
  readonly upstreamLatencyMs: number;
  /** How long we watch for requests after a deregistration. */
  readonly observeMs: number;
  /** Longest wait for a new instance's first request. */
  readonly firstRequestTimeoutMs: number;
}

export interface ScaleParams {
  readonly instances: number;
  readonly small: number;
  /** Picks per timing of the bare picker. */
  readonly picks: number;
  /**
   * Paired timings (10 peers, then 10,000) of the bare picker; the ratio is their median. A pick
   * is ~0.2 us, so one timing is at the mercy of whatever else the shared machine runs: more pairs.
   */
  readonly pickReps: number;
  /** Requests per measurement through the client (mock transport). */
  readonly requests: number;
  readonly reps: number;
  readonly updates: number;
}

export interface CallerParams {
  readonly callers: number;
  readonly maxCallers: number;
  readonly checkpoints: readonly number[];
}

export interface LoadParams {
  /** 14.1: CPU per request of each instance (one costlier). */
  readonly costsMs: readonly number[];
  readonly callers: number;
  readonly concurrency: number;
  readonly warmupMs: number;
  readonly durationMs: number;
  readonly reps: number;
  /** 14.2 */
  readonly workerCostMs: number;
  readonly workerConcurrency: number;
  /** 14.3 */
  readonly overheadConcurrency: number;
  readonly overheadRounds: number;
}

export interface BenchParams {
  readonly smoke: boolean;
  readonly throughput: ThroughputParams;
  readonly degraded: DegradedParams;
  readonly failover: FailoverParams;
  readonly discovery: DiscoveryParams;
  readonly scale: ScaleParams;
  readonly callers: CallerParams;
  readonly load: LoadParams;
}

export const FULL: BenchParams = {
  smoke: false,
  throughput: {
    concurrency: 32,
    connections: 32,
    upstreamLatencyMs: 0,
    warmupMs: 1000,
    sliceMs: 500,
    rounds: 20,
    nginxWorkers: 1,
  },
  degraded: {
    concurrency: 50,
    tenLatencies: [1, 10, 10, 10, 10, 100, 100, 100, 100, 1000],
    fiveLatencies: [10, 10, 10, 10, 100],
    warmupMs: 2000,
    durationMs: 8000,
    reps: 2,
  },
  failover: { concurrency: 16, upstreamLatencyMs: 1, warmupMs: 1000, killAfterMs: 1000, durationMs: 4000, reps: 3 },
  discovery: { trials: 5, concurrency: 4, upstreamLatencyMs: 1, observeMs: 2500, firstRequestTimeoutMs: 10_000 },
  scale: { instances: 10_000, small: 10, picks: 1_000_000, pickReps: 9, requests: 40_000, reps: 3, updates: 3 },
  callers: { callers: 100_000, maxCallers: 10_000, checkpoints: [5_000, 10_000, 25_000, 50_000, 100_000] },
  load: {
    costsMs: [1, 1, 1, 3],
    callers: 3,
    concurrency: 4,
    warmupMs: 1000,
    durationMs: 3000,
    reps: 3,
    workerCostMs: 1,
    workerConcurrency: 3,
    overheadConcurrency: 16,
    overheadRounds: 6,
  },
};

/** Tiny counts: every scenario runs, nothing is worth comparing. No nginx. */
export const SMOKE: BenchParams = {
  smoke: true,
  throughput: {
    concurrency: 4,
    connections: 4,
    upstreamLatencyMs: 0,
    warmupMs: 100,
    sliceMs: 100,
    rounds: 2,
    nginxWorkers: 1,
  },
  degraded: {
    concurrency: 10,
    tenLatencies: [0, 1, 1, 1, 1, 10, 10, 10, 10, 100],
    fiveLatencies: [1, 1, 1, 1, 10],
    warmupMs: 100,
    durationMs: 400,
    reps: 1,
  },
  failover: { concurrency: 4, upstreamLatencyMs: 1, warmupMs: 100, killAfterMs: 200, durationMs: 600, reps: 1 },
  discovery: { trials: 1, concurrency: 2, upstreamLatencyMs: 1, observeMs: 600, firstRequestTimeoutMs: 10_000 },
  scale: { instances: 1_000, small: 10, picks: 50_000, pickReps: 1, requests: 2_000, reps: 1, updates: 2 },
  callers: { callers: 3_000, maxCallers: 1_000, checkpoints: [1_000, 3_000] },
  load: {
    costsMs: [0.2, 0.6],
    callers: 2,
    concurrency: 2,
    warmupMs: 50,
    durationMs: 200,
    reps: 1,
    workerCostMs: 0.2,
    workerConcurrency: 2,
    overheadConcurrency: 2,
    overheadRounds: 1,
  },
};
