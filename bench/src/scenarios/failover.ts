/**
 * Scenario 5: SIGKILL one of three upstreams under load. The instance stays listed in the
 * (static) registry, so only the client's own protections (retry on another peer, outlier
 * ejection, breaker) keep requests away from it. undici BalancedPool under the same kill is
 * shown for comparison.
 */
import { runLoad } from '../load.js';
import type { LoadResult, LoadSpec } from '../load-runner.js';
import { fmtMs, status, table, type BenchContext, type Row, type ScenarioOutcome } from '../scenario.js';
import { median } from '../stats.js';
import { startUpstreams, stopUpstreams, targetsOf } from '../upstreams.js';

const SERVICE = 'failover';
const PEERLB = 'peerlb default client';
const BALANCED_POOL = 'undici BalancedPool';

async function oneRun(ctx: BenchContext, label: string, mode: LoadSpec['mode'], rep: number): Promise<LoadResult> {
  const p = ctx.params.failover;
  const upstreams = await startUpstreams(`f${rep}-`, [p.upstreamLatencyMs, p.upstreamLatencyMs, p.upstreamLatencyMs]);
  const victim = upstreams[2]!;
  try {
    const result = await runLoad({
      label,
      mode,
      service: SERVICE,
      targets: targetsOf(upstreams),
      concurrency: p.concurrency,
      connections: 32,
      warmupMs: p.warmupMs,
      durationMs: p.durationMs,
      maxRequests: 1_000_000,
      timeoutMs: 10_000,
      kill: { pid: victim.pid, port: victim.port, afterMs: p.killAfterMs },
    });
    const f = result.failover!;
    ctx.log(
      `  [rep ${rep + 1}] ${label}: failed after kill ${f.failedAfterKill}, requests to the killed upstream after the kill ${f.attemptsAfterKill}, last ${fmtMs(f.lastAttemptAfterKillMs)} after it`,
    );
    return result;
  } finally {
    await stopUpstreams(upstreams);
  }
}

export async function failoverScenario(ctx: BenchContext): Promise<ScenarioOutcome> {
  const p = ctx.params.failover;
  const peerlb: LoadResult[] = [];
  const bp: LoadResult[] = [];
  for (let rep = 0; rep < p.reps; rep++) {
    peerlb.push(await oneRun(ctx, PEERLB, { kind: 'peerlb', registry: { kind: 'static' } }, rep));
  }
  bp.push(await oneRun(ctx, BALANCED_POOL, { kind: 'balanced-pool' }, 0));

  const failed = peerlb.map((r) => r.failover!.failedAfterKill);
  const last = peerlb.map((r) => r.failover!.lastAttemptAfterKillMs);
  const observed = median(peerlb.map((r) => r.failover!.observedAfterKillMs));
  const maxFailed = Math.max(...failed);
  const stillSending = peerlb.some((r) => r.failover!.lastAttemptAfterKillMs > r.failover!.observedAfterKillMs - 100);
  const rows: Row[] = [
    {
      id: '5',
      scenario: 'Failover',
      measure: `failed GETs after SIGKILL of one of three upstreams (concurrency ${p.concurrency})`,
      result: `${failed.join(', ')} (per run)`,
      target: '0',
      status: status(maxFailed === 0),
      note: `BalancedPool under the same kill: ${bp.map((r) => r.failover!.failedAfterKill).join(', ')} failed`,
    },
    {
      id: '5',
      scenario: 'Failover',
      measure: 'time from the kill until no request goes to it',
      result: `median ${fmtMs(median(last))}, max ${fmtMs(Math.max(...last))}`,
      target: '(reported)',
      status: 'INFO',
      note: stillSending
        ? `requests still reached it near the end of the ${fmtMs(observed)} observed`
        : `requests created for it after the kill: ${peerlb.map((r) => r.failover!.attemptsAfterKill).join(', ')} (first tries + retried ones)`,
    },
  ];
  const all = [...peerlb, ...bp];
  const details = [
    `Three upstreams (${p.upstreamLatencyMs} ms latency), concurrency ${p.concurrency}, warm-up ${p.warmupMs} ms, ` +
      `SIGKILL ${p.killAfterMs} ms into a ${p.durationMs} ms window. The killed instance stays in the registry. ` +
      'Requests to it are counted from undici\'s `undici:request:create` diagnostics channel (every attempt, retries included).',
    '',
    table(
      ['client', 'run', 'req/s', 'failed after kill', 'requests to it after kill', 'last one after kill', 'p99'],
      all.map((r, i) => [
        r.label,
        String(r.label === PEERLB ? i + 1 : 1),
        r.rps.toFixed(0),
        String(r.failover!.failedAfterKill),
        String(r.failover!.attemptsAfterKill),
        fmtMs(r.failover!.lastAttemptAfterKillMs),
        fmtMs(r.latency.p99),
      ]),
    ),
  ].join('\n');
  return { key: 'failover', title: 'Scenario 5: failover', rows, data: { params: p, peerlb, balancedPool: bp }, details };
}
