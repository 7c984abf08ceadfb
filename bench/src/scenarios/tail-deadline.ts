/**
 * Issue 15: budgeted hedging and deadlines across hops.
 *
 * - Tail (15.1): 5 upstreams where each request has a 5 % chance of taking 10x the usual time,
 *   concurrency 32: p99 and p99.9 with hedging (`delayMs: 'p95'`) vs without, and the extra
 *   requests the upstreams received. Targets: p99 at least 60 % lower, at most 5 % extra.
 * - Overload (15.2): every upstream saturated (one request at a time each, a queue in front):
 *   hedges below 1 % of calls, goodput not lower than without hedging.
 * - Deadline propagation (15.3): a 3-hop chain whose last hop needs longer than the first
 *   caller's deadline: work done after that deadline, with and without propagation (target:
 *   none with it).
 *
 * Each load runs in a fresh process (hedge-load.ts); hedged and unhedged runs alternate over the
 * repetitions, medians reported.
 */
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createClient } from '@peerlb/client';
import { MemoryRegistry, silentLogger } from '@peerlb/registry';
import { nextMessage, send, spawnEntry, stopChild } from '../child.js';
import type { HedgeLoadResult, HedgeLoadSpec } from '../hedge-load.js';
import type { HopServiceConfig } from '../hop-service.js';
import { fmt, fmtInt, fmtMs, status, table, type BenchContext, type Row, type ScenarioOutcome } from '../scenario.js';
import { median } from '../stats.js';
import type { TailUpstreamConfig } from '../tail-upstream.js';
import type { Target } from '../upstreams.js';

interface Params {
  readonly tail: { baseMs: number; slowShare: number; slowFactor: number; concurrency: number; warmup: number; requests: number; reps: number };
  readonly overload: { baseMs: number; concurrency: number; warmup: number; requests: number; reps: number };
  readonly hops: { deadlineMs: number; lastHopWorkMs: number; concurrency: number; requests: number };
}

const FULL: Params = {
  tail: { baseMs: 10, slowShare: 0.05, slowFactor: 10, concurrency: 32, warmup: 1_000, requests: 10_000, reps: 3 },
  overload: { baseMs: 4, concurrency: 64, warmup: 1_000, requests: 4_000, reps: 3 },
  hops: { deadlineMs: 200, lastHopWorkMs: 500, concurrency: 8, requests: 80 },
};

const SMOKE: Params = {
  tail: { baseMs: 5, slowShare: 0.05, slowFactor: 10, concurrency: 8, warmup: 100, requests: 300, reps: 1 },
  overload: { baseMs: 2, concurrency: 16, warmup: 100, requests: 300, reps: 1 },
  hops: { deadlineMs: 100, lastHopWorkMs: 200, concurrency: 4, requests: 8 },
};

const UPSTREAMS = 5;

interface Upstream {
  readonly target: Target;
  readonly child: ChildProcess;
}

async function startTailUpstreams(prefix: string, config: Omit<TailUpstreamConfig, 'id'>): Promise<Upstream[]> {
  const started: Upstream[] = [];
  try {
    for (let i = 0; i < UPSTREAMS; i++) {
      const id = `${prefix}${i}`;
      const child = spawnEntry('tail-upstream', { ...config, id });
      started.push({ target: { id, port: 0 }, child });
      const ready = await nextMessage<{ type: 'ready'; port: number }>(child, 'ready', 30_000);
      started[i] = { target: { id, port: ready.port }, child };
    }
    return started;
  } catch (err) {
    await Promise.all(started.map((u) => stopChild(u.child)));
    throw err;
  }
}

/** Requests the upstreams received since the last call (each is reset after reporting). */
async function received(upstreams: readonly Upstream[]): Promise<number> {
  let total = 0;
  for (const u of upstreams) {
    const report = nextMessage<{ type: 'report'; received: number }>(u.child, 'report', 10_000);
    send(u.child, { type: 'report' });
    total += (await report).received;
    const reset = nextMessage(u.child, 'reset', 10_000);
    send(u.child, { type: 'reset' });
    await reset;
  }
  return total;
}

interface Run extends HedgeLoadResult {
  /** Requests the upstreams received per call, minus one. */
  readonly extra: number;
}

async function runHedgeLoad(spec: HedgeLoadSpec, upstreams: readonly Upstream[]): Promise<Run> {
  await received(upstreams);
  const child = spawnEntry('hedge-load', spec);
  try {
    const message = await nextMessage<{ type: 'result'; result: HedgeLoadResult }>(child, 'result', 300_000);
    if (child.exitCode === null && child.signalCode === null) await once(child, 'exit');
    const sent = await received(upstreams);
    const calls = spec.warmupRequests + spec.requests;
    return { ...message.result, extra: sent / calls - 1 };
  } finally {
    await stopChild(child);
  }
}

interface ModeSummary {
  readonly label: string;
  readonly p50: number;
  readonly p99: number;
  readonly p999: number;
  readonly goodput: number;
  readonly extra: number;
  readonly hedgeShare: number;
  readonly won: number;
  readonly cancelled: number;
  readonly errors: number;
  readonly runs: readonly Run[];
}

function summarizeRuns(label: string, runs: readonly Run[]): ModeSummary {
  return {
    label,
    p50: median(runs.map((r) => r.p50)),
    p99: median(runs.map((r) => r.p99)),
    p999: median(runs.map((r) => r.p999)),
    goodput: median(runs.map((r) => r.goodput)),
    extra: median(runs.map((r) => r.extra)),
    hedgeShare: median(runs.map((r) => r.hedges.sent / r.calls)),
    won: median(runs.map((r) => r.hedges.won)),
    cancelled: median(runs.map((r) => r.hedges.cancelled)),
    errors: runs.reduce((n, r) => n + r.errors, 0),
    runs,
  };
}

async function compare(
  ctx: BenchContext,
  name: string,
  upstreams: readonly Upstream[],
  base: Omit<HedgeLoadSpec, 'label' | 'hedge'>,
  modes: ReadonlyArray<{ label: string; hedge: HedgeLoadSpec['hedge'] }>,
  reps: number,
): Promise<ModeSummary[]> {
  const runs = new Map<string, Run[]>(modes.map((m) => [m.label, []]));
  for (let rep = 0; rep < reps; rep++) {
    for (let k = 0; k < modes.length; k++) {
      const mode = modes[(k + rep) % modes.length]!;
      const run = await runHedgeLoad({ ...base, label: mode.label, hedge: mode.hedge }, upstreams);
      runs.get(mode.label)!.push(run);
      ctx.log(
        `  [${name}, rep ${rep + 1}] ${mode.label}: p50 ${fmtMs(run.p50)}, p99 ${fmtMs(run.p99)}, p99.9 ${fmtMs(run.p999)}, ` +
          `${fmtInt(run.goodput)} ok/s, extra ${pct(run.extra)}, hedges ${run.hedges.sent} (won ${run.hedges.won}), errors ${run.errors}`,
      );
    }
  }
  return modes.map((m) => summarizeRuns(m.label, runs.get(m.label)!));
}

const NO_HEDGE = 'no hedging';
const HEDGE_P95 = "hedge { delayMs: 'p95' }";
const HEDGE_P99 = "hedge { delayMs: 'p99' }";
/** Twice the usual latency: what an operator who knows the service's latency would set. */
const hedgeFixed = (ms: number) => `hedge { delayMs: ${ms} }`;

type Mode = { label: string; hedge: HedgeLoadSpec['hedge'] };

/** Starts the upstreams of one comparison, runs every mode against them, stops them. */
async function compareOn(
  ctx: BenchContext,
  name: string,
  upstream: Omit<TailUpstreamConfig, 'id'>,
  load: { concurrency: number; warmup: number; requests: number; reps: number },
  modes: readonly Mode[],
): Promise<ModeSummary[]> {
  const upstreams = await startTailUpstreams(`${name}-`, upstream);
  try {
    const base = {
      service: name,
      targets: upstreams.map((u) => u.target),
      concurrency: load.concurrency,
      warmupRequests: load.warmup,
      requests: load.requests,
      timeoutMs: 30_000,
    };
    return await compare(ctx, name, upstreams, base, modes, load.reps);
  } finally {
    await Promise.all(upstreams.map((u) => stopChild(u.child)));
  }
}

function tail(ctx: BenchContext, p: Params['tail']): Promise<ModeSummary[]> {
  return compareOn(ctx, 'tail', { baseMs: p.baseMs, slowShare: p.slowShare, slowFactor: p.slowFactor, capacity: 0 }, p, [
    { label: NO_HEDGE, hedge: undefined },
    { label: hedgeFixed(2 * p.baseMs), hedge: { delayMs: 2 * p.baseMs } },
    { label: HEDGE_P95, hedge: { delayMs: 'p95' } },
    { label: HEDGE_P99, hedge: { delayMs: 'p99' } },
  ]);
}

/** Every upstream works on one request at a time; the rest wait in its queue. */
function overload(ctx: BenchContext, p: Params['overload']): Promise<ModeSummary[]> {
  return compareOn(ctx, 'busy', { baseMs: p.baseMs, slowShare: 0, slowFactor: 1, capacity: 1 }, p, [
    { label: NO_HEDGE, hedge: undefined },
    { label: HEDGE_P95, hedge: { delayMs: 'p95' } },
  ]);
}

interface HopRun {
  readonly propagate: boolean;
  readonly requests: number;
  readonly deadlineErrors: number;
  /** Work done, summed over the hops, after the first caller's deadline. */
  readonly workAfterDeadlineMs: number;
  readonly requestsWorkingLate: number;
  readonly stoppedByDeadline: number;
  /** Median time the first caller waited. */
  readonly callerP50Ms: number;
  /** How the first caller's calls ended: status code, or error code. */
  readonly outcomes: Record<string, number>;
}

async function hopChain(ctx: BenchContext, p: Params['hops'], propagate: boolean): Promise<HopRun> {
  const children: ChildProcess[] = [];
  const start = async (config: HopServiceConfig): Promise<number> => {
    const child = spawnEntry('hop-service', config);
    children.push(child);
    return (await nextMessage<{ type: 'ready'; port: number }>(child, 'ready', 30_000)).port;
  };
  try {
    const portC = await start({ id: 'hop-c', workMs: p.lastHopWorkMs, propagate });
    const portB = await start({ id: 'hop-b', workMs: 5, nextPort: portC, propagate });
    const portA = await start({ id: 'hop-a', workMs: 5, nextPort: portB, propagate });
    const client = createClient({
      registry: new MemoryRegistry({
        logger: silentLogger,
        instances: [{ id: 'hop-a', service: 'hop-a', address: '127.0.0.1', port: portA }],
      }),
      closeRegistry: true,
      logger: silentLogger,
      retry: false,
      // Every call here runs into its deadline on purpose: that must not open breakers or eject.
      breaker: false,
      outlier: false,
      propagateDeadline: propagate,
    });
    let issued = 0;
    let deadlineErrors = 0;
    const waited: number[] = [];
    const outcomes: Record<string, number> = {};
    const count = (key: string) => (outcomes[key] = (outcomes[key] ?? 0) + 1);
    const worker = async () => {
      while (issued < p.requests) {
        issued++;
        const started = performance.now();
        const deadlineAt = performance.timeOrigin + started + p.deadlineMs;
        try {
          const r = await client.request({
            service: 'hop-a',
            path: '/',
            timeoutMs: p.deadlineMs,
            headers: { 'x-bench-deadline-at': String(deadlineAt) },
          });
          await r.body.dump();
          count(String(r.statusCode));
        } catch (err) {
          const code = (err as { code?: string }).code ?? 'error';
          count(code);
          if (code === 'PEERLB_DEADLINE') deadlineErrors++;
        }
        waited.push(performance.now() - started);
      }
    };
    await Promise.all(Array.from({ length: p.concurrency }, worker));
    await client.close();
    // Let work still running down the chain finish (without propagation, it runs to the end).
    await new Promise((resolve) => setTimeout(resolve, p.lastHopWorkMs + 200));
    let workAfterDeadlineMs = 0;
    let requestsWorkingLate = 0;
    let stoppedByDeadline = 0;
    for (const child of children) {
      const report = nextMessage<{ type: 'report'; workAfterDeadlineMs: number; requestsWorkingLate: number; stoppedByDeadline: number }>(
        child,
        'report',
        10_000,
      );
      send(child, { type: 'report' });
      const r = await report;
      workAfterDeadlineMs += r.workAfterDeadlineMs;
      requestsWorkingLate += r.requestsWorkingLate;
      stoppedByDeadline += r.stoppedByDeadline;
    }
    const run: HopRun = {
      propagate,
      requests: p.requests,
      deadlineErrors,
      workAfterDeadlineMs,
      requestsWorkingLate,
      stoppedByDeadline,
      callerP50Ms: median(waited),
      outcomes,
    };
    ctx.log(
      `  [3 hops, propagation ${propagate ? 'on' : 'off'}] ${run.deadlineErrors}/${run.requests} hit the ${p.deadlineMs} ms deadline; ` +
        `work after it: ${run.workAfterDeadlineMs} ms in ${run.requestsWorkingLate} requests; stopped by the deadline: ${run.stoppedByDeadline}; ` +
        `outcomes ${JSON.stringify(run.outcomes)}`,
    );
    return run;
  } finally {
    await Promise.all(children.map((c) => stopChild(c)));
  }
}

export async function hedgingScenario(ctx: BenchContext): Promise<ScenarioOutcome> {
  const p = ctx.params.smoke ? SMOKE : FULL;
  const t = await tail(ctx, p.tail);
  const o = await overload(ctx, p.overload);

  const [tNo, tHedge, tP95, tP99] = [t[0]!, t[1]!, t[2]!, t[3]!];
  const [oNo, oHedge] = [o[0]!, o[1]!];
  const p99Drop = (m: ModeSummary) => 1 - m.p99 / tNo.p99;
  const percentileRow = (m: ModeSummary): Row => ({
    id: '15.1',
    scenario: 'Tail',
    measure: `the same with the delay from live latency, ${m.label}`,
    result: `p99 ${pct(p99Drop(m))} lower (${fmtMs(m.p99)}), ${pct(m.extra)} extra requests`,
    target: '(reported)',
    status: 'INFO',
    note: `p99.9 ${fmtMs(m.p999)}; hedges won ${fmt(m.won, 0)} of ${fmt(m.hedgeShare * p.tail.requests, 0)} (median run)`,
  });
  const rows: Row[] = [
    {
      id: '15.1',
      scenario: 'Tail',
      measure: `p99, ${tHedge.label} (2x the usual latency) vs no hedging, ${UPSTREAMS} upstreams (${p.tail.baseMs} ms, ${pct(p.tail.slowShare)} of requests ${p.tail.slowFactor}x), concurrency ${p.tail.concurrency}`,
      result: `${pct(p99Drop(tHedge))} lower (${fmtMs(tHedge.p99)} vs ${fmtMs(tNo.p99)})`,
      target: '>= 60% lower',
      status: status(p99Drop(tHedge) >= 0.6),
      note: `p99.9 ${fmtMs(tHedge.p999)} vs ${fmtMs(tNo.p999)}; p50 ${fmtMs(tHedge.p50)} vs ${fmtMs(tNo.p50)}`,
    },
    {
      id: '15.1',
      scenario: 'Tail',
      measure: `extra requests the upstreams received, ${tHedge.label}`,
      result: pct(tHedge.extra),
      target: '<= 5%',
      status: status(tHedge.extra <= 0.05),
      note: `hedges sent ${pct(tHedge.hedgeShare)} of calls, won ${fmt(tHedge.won, 0)}, losers cancelled ${fmt(tHedge.cancelled, 0)} (median run); without hedging: ${pct(tNo.extra)} extra (retries)`,
    },
    percentileRow(tP95),
    percentileRow(tP99),
    {
      id: '15.2',
      scenario: 'Overload',
      measure: `hedges sent, every upstream saturated (1 at a time, ${p.overload.baseMs} ms each), concurrency ${p.overload.concurrency}`,
      result: `${pct(oHedge.hedgeShare)} of calls`,
      target: '< 1%',
      status: status(oHedge.hedgeShare < 0.01),
      note: `won ${fmt(oHedge.won, 0)}; p99 ${fmtMs(oHedge.p99)} vs ${fmtMs(oNo.p99)} without`,
    },
    {
      id: '15.2',
      scenario: 'Overload',
      measure: 'goodput with hedging vs without',
      result: `${fmt(oHedge.goodput / oNo.goodput)}x (${fmtInt(oHedge.goodput)} vs ${fmtInt(oNo.goodput)} ok/s)`,
      target: 'not lower (>= 0.95x: run-to-run noise)',
      status: status(oHedge.goodput / oNo.goodput >= 0.95),
      note: `errors: ${oHedge.errors} vs ${oNo.errors}`,
    },
  ];
  const modeTable = (modes: readonly ModeSummary[]) =>
    table(
      ['client', 'p50', 'p99', 'p99.9', 'ok/s', 'extra requests', 'hedges / calls', 'hedges won', 'errors', 'runs'],
      modes.map((m) => [
        m.label,
        fmtMs(m.p50),
        fmtMs(m.p99),
        fmtMs(m.p999),
        fmtInt(m.goodput),
        pct(m.extra),
        pct(m.hedgeShare),
        fmt(m.won, 0),
        String(m.errors),
        String(m.runs.length),
      ]),
    );
  const details = [
    `Tail: ${UPSTREAMS} upstreams, ${p.tail.baseMs} ms, ${pct(p.tail.slowShare)} of requests ${p.tail.slowFactor}x slower; ` +
      `concurrency ${p.tail.concurrency}, ${fmtInt(p.tail.warmup)} warm-up + ${fmtInt(p.tail.requests)} measured calls per run, ` +
      `${p.tail.reps} alternating runs per mode, medians. Extra requests: requests the upstreams received per call, minus one.`,
    '',
    modeTable(t),
    '',
    `Overload: ${UPSTREAMS} upstreams working on one request at a time (${p.overload.baseMs} ms each, the rest queued), ` +
      `concurrency ${p.overload.concurrency}, ${fmtInt(p.overload.requests)} measured calls per run.`,
    '',
    modeTable(o),
  ].join('\n');
  return {
    key: 'hedging',
    title: 'Scenario 15.1-15.2: hedged requests',
    rows,
    data: { params: { tail: p.tail, overload: p.overload }, tail: t, overload: o },
    details,
  };
}

export async function deadlineScenario(ctx: BenchContext): Promise<ScenarioOutcome> {
  const p = ctx.params.smoke ? SMOKE : FULL;
  const without = await hopChain(ctx, p.hops, false);
  const withIt = await hopChain(ctx, p.hops, true);
  const rows: Row[] = [
    {
      id: '15.3',
      scenario: 'Deadline propagation',
      measure: `work after the first caller's ${p.hops.deadlineMs} ms deadline, 3 hops, last hop needs ${p.hops.lastHopWorkMs} ms, ${p.hops.requests} calls`,
      result: `${fmtInt(withIt.workAfterDeadlineMs)} ms with propagation vs ${fmtInt(without.workAfterDeadlineMs)} ms without`,
      target: 'none with propagation',
      status: status(withIt.workAfterDeadlineMs === 0 && without.workAfterDeadlineMs > 0),
      note: `requests still worked on after the deadline: ${withIt.requestsWorkingLate} vs ${without.requestsWorkingLate}; stopped by their deadline: ${withIt.stoppedByDeadline}`,
    },
  ];
  const details = [
    `Deadline propagation: caller -> hop-a (5 ms) -> hop-b (5 ms) -> hop-c (${p.hops.lastHopWorkMs} ms, 5 ms slices), ` +
      `first caller's deadline ${p.hops.deadlineMs} ms, concurrency ${p.hops.concurrency}.`,
    '',
    table(
      ['propagation', 'calls', 'deadline errors', 'work after the deadline', 'requests worked on late', 'stopped by deadline', 'caller p50'],
      [without, withIt].map((r) => [
        r.propagate ? 'on' : 'off',
        String(r.requests),
        String(r.deadlineErrors),
        `${fmtInt(r.workAfterDeadlineMs)} ms`,
        String(r.requestsWorkingLate),
        String(r.stoppedByDeadline),
        fmtMs(r.callerP50Ms),
      ]),
    ),
  ].join('\n');
  return {
    key: 'deadline',
    title: 'Scenario 15.3: deadlines across hops',
    rows,
    data: { params: p.hops, without, with: withIt },
    details,
  };
}

function pct(share: number): string {
  return Number.isFinite(share) ? `${(share * 100).toFixed(2)}%` : 'n/a';
}
