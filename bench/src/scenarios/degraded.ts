/**
 * Scenario 4: upstreams of very different speed. The default balancer (P2C over peak-EWMA)
 * against peerlb's round robin and undici's BalancedPool, same client concurrency.
 */
import { runInterleaved } from '../load.js';
import type { LoadResult, LoadSpec } from '../load-runner.js';
import { fmtInt, fmtMs, fmtRatio, status, table, type BenchContext, type Row, type ScenarioOutcome } from '../scenario.js';
import { median } from '../stats.js';
import { startUpstreams, stopUpstreams, targetsOf, type Upstream } from '../upstreams.js';
import { summarizeMode } from './throughput.js';

const MODES = {
  p2c: 'peerlb default (P2C, peak EWMA)',
  rr: 'peerlb roundRobin()',
  bp: 'undici BalancedPool',
} as const;

interface SetResult {
  readonly name: string;
  readonly latencies: readonly number[];
  readonly modes: ReturnType<typeof summarizeMode>[];
  /** Share of answers from the slowest upstream, per mode. */
  readonly slowShare: Record<string, number>;
  readonly p99Ratio: { readonly vsRoundRobin: number; readonly vsBalancedPool: number };
}

async function runSet(ctx: BenchContext, name: string, latencies: readonly number[]): Promise<SetResult> {
  const p = ctx.params.degraded;
  const service = `degraded-${latencies.length}`;
  const upstreams: Upstream[] = await startUpstreams(`d${latencies.length}-`, latencies);
  const targets = targetsOf(upstreams);
  const slowest = upstreams.reduce((a, b) => (b.latencyMs > a.latencyMs ? b : a)).id;
  const spec = (label: string, mode: LoadSpec['mode']): LoadSpec => ({
    label,
    mode,
    service,
    targets,
    concurrency: p.concurrency,
    connections: 32,
    warmupMs: p.warmupMs,
    durationMs: p.durationMs,
    maxRequests: 1_000_000,
    timeoutMs: 30_000,
  });
  const specs = [
    spec(MODES.p2c, { kind: 'peerlb', registry: { kind: 'static' } }),
    spec(MODES.rr, { kind: 'peerlb', registry: { kind: 'static' }, balancer: 'round-robin' }),
    spec(MODES.bp, { kind: 'balanced-pool' }),
  ];
  let results: Map<string, LoadResult[]>;
  try {
    results = await runInterleaved(specs, p.reps, undefined, (r, rep) =>
      ctx.log(
        `  [${name}, rep ${rep + 1}] ${r.label}: ${fmtInt(r.rps)} req/s, p50 ${fmtMs(r.latency.p50)}, p99 ${fmtMs(r.latency.p99)}, slowest ${r.perTarget[slowest] ?? 0}/${r.requests}`,
      ),
    );
  } finally {
    await stopUpstreams(upstreams);
  }
  const modes = specs.map((s) => summarizeMode(s.label, results.get(s.label) ?? []));
  const slowShare: Record<string, number> = {};
  for (const s of specs) {
    slowShare[s.label] = median((results.get(s.label) ?? []).map((r) => (r.perTarget[slowest] ?? 0) / r.requests));
  }
  const p99 = (label: string) => modes.find((m) => m.label === label)!.p99;
  return {
    name,
    latencies,
    modes,
    slowShare,
    p99Ratio: { vsRoundRobin: p99(MODES.rr) / p99(MODES.p2c), vsBalancedPool: p99(MODES.bp) / p99(MODES.p2c) },
  };
}

export async function degradedScenario(ctx: BenchContext): Promise<ScenarioOutcome> {
  const p = ctx.params.degraded;
  const ten = await runSet(ctx, 'ten upstreams', p.tenLatencies);
  const five = await runSet(ctx, 'five upstreams, one 10x slower', p.fiveLatencies);
  const p99Of = (set: SetResult, label: string) => set.modes.find((m) => m.label === label)!.p99;
  const rows: Row[] = [
    {
      id: '4',
      scenario: 'Degraded peers',
      measure: `p99, default vs roundRobin(), ten upstreams (${describe(p.tenLatencies)} ms), concurrency ${p.concurrency}`,
      result: `${fmtRatio(ten.p99Ratio.vsRoundRobin)} lower (${fmtMs(p99Of(ten, MODES.p2c))} vs ${fmtMs(p99Of(ten, MODES.rr))})`,
      target: '>= 5x lower',
      status: status(ten.p99Ratio.vsRoundRobin >= 5),
      note: `share of requests on the slowest upstream: default ${pct(ten.slowShare[MODES.p2c]!)}, round robin ${pct(ten.slowShare[MODES.rr]!)}`,
    },
    {
      id: '4',
      scenario: 'Degraded peers',
      measure: 'p99, default vs BalancedPool, ten upstreams',
      result: `${fmtRatio(ten.p99Ratio.vsBalancedPool)} lower (${fmtMs(p99Of(ten, MODES.p2c))} vs ${fmtMs(p99Of(ten, MODES.bp))})`,
      target: '(reported)',
      status: 'INFO',
      note: `BalancedPool share on the slowest: ${pct(ten.slowShare[MODES.bp]!)}`,
    },
    {
      id: '4',
      scenario: 'Degraded peers',
      measure: `p99, five upstreams (${describe(p.fiveLatencies)} ms): default vs roundRobin() / BalancedPool`,
      result: `${fmtMs(p99Of(five, MODES.p2c))} vs ${fmtMs(p99Of(five, MODES.rr))} / ${fmtMs(p99Of(five, MODES.bp))} (${fmtRatio(five.p99Ratio.vsRoundRobin)} / ${fmtRatio(five.p99Ratio.vsBalancedPool)} lower)`,
      target: '(reported)',
      status: 'INFO',
      note:
        `share on the slow one: default ${pct(five.slowShare[MODES.p2c]!)}, round robin ${pct(five.slowShare[MODES.rr]!)}` +
        (five.slowShare[MODES.p2c]! > 0.01
          ? '. Over 1% of requests still go to the slow upstream, so p99 is its latency: peak-EWMA cost is latency x ' +
            '(in flight + 1), and with ~12 requests in flight on each fast upstream an idle slow one looks as cheap; ' +
            "these upstreams' latency does not grow with load, so the queueing the cost assumes never comes"
          : ''),
    },
  ];
  const setTable = (set: SetResult) =>
    table(
      ['client', 'req/s', 'p50', 'p99', 'share on slowest', 'errors', 'runs'],
      set.modes.map((m) => [
        m.label,
        fmtInt(m.rps),
        fmtMs(m.p50),
        fmtMs(m.p99),
        pct(set.slowShare[m.label]!),
        String(m.errors),
        String(m.runs),
      ]),
    );
  const details = [
    `Concurrency ${p.concurrency}, warm-up ${p.warmupMs} ms (not measured: the balancer has learnt the latencies), ` +
      `window ${p.durationMs} ms, ${p.reps} interleaved repetitions, medians.`,
    '',
    `Ten upstreams, latencies ${describe(p.tenLatencies)} ms:`,
    '',
    setTable(ten),
    '',
    `Five upstreams, latencies ${describe(p.fiveLatencies)} ms:`,
    '',
    setTable(five),
  ].join('\n');
  return { key: 'degraded', title: 'Scenario 4: degraded peers', rows, data: { params: p, ten, five }, details };
}

function describe(latencies: readonly number[]): string {
  const counts = new Map<number, number>();
  for (const l of latencies) counts.set(l, (counts.get(l) ?? 0) + 1);
  return [...counts].map(([l, n]) => (n > 1 ? `${n} x ${l}` : `${l}`)).join(', ');
}

function pct(share: number): string {
  return Number.isFinite(share) ? `${(share * 100).toFixed(2)}%` : 'n/a';
}
