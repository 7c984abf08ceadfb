/**
 * Issue 14: server-reported event-loop load, equal shares, cluster workers as peers.
 *
 * 14.1 Heterogeneous capacity, several callers: CPU-bound instances (one costlier per request)
 *      and independent caller processes; goodput, p99 and the spread of event-loop utilization
 *      for the default with and without load reports, leastRequests() and roundRobin().
 * 14.2 Workers: keep-alive callers against a CPU-bound service of 2 workers, peerlb with workers
 *      as peers vs node:cluster sharing one port: per-worker share max/mean and throughput.
 * 14.3 Overhead of the reports: the same small service and caller with reports on and off.
 */
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { nextMessage, send, spawnEntry, stopChild } from '../child.js';
import type { CpuCallerConfig, CpuCallerResult, CallerMode } from '../cpu-caller.js';
import type { CpuInstanceConfig } from '../cpu-instance.js';
import { processCpuUs } from '../proc-cpu.js';
import { median } from '../stats.js';
import { fmt, fmtInt, fmtMs, fmtRatio, status, table, type BenchContext, type Row, type ScenarioOutcome } from '../scenario.js';

interface ModeRun {
  readonly goodput: number;
  readonly p99: number;
  readonly errors: number;
  readonly eluSpread: number;
  readonly elus: number[];
}

const MODES: readonly CallerMode[] = ['reports', 'no-reports', 'least-requests', 'round-robin'];
const LABEL: Record<string, string> = {
  reports: 'peerlb default, load reports on',
  'no-reports': 'peerlb default, loadReports: false',
  'least-requests': 'peerlb leastRequests()',
  'round-robin': 'peerlb roundRobin()',
};

export async function loadReportsScenario(ctx: BenchContext): Promise<ScenarioOutcome> {
  const p = ctx.params.load;
  const env = { ...process.env, PEERLB_REGISTRY_DIR: join(ctx.tmp, 'load-registry'), CONSUL_HTTP_ADDR: '' };
  const rows: Row[] = [];
  const details: string[] = [];
  const data: Record<string, unknown> = {};

  // --- 14.1 heterogeneous capacity -----------------------------------------------------------
  const hetero = await startInstances(
    p.costsMs.map((costMs) => ({ mode: 'instance', service: 'hetero', costMs })),
    env,
  );
  const runs = new Map<CallerMode, ModeRun[]>(MODES.map((m) => [m, []]));
  try {
    for (let rep = 0; rep < p.reps; rep++) {
      for (let k = 0; k < MODES.length; k++) {
        const mode = MODES[(k + rep) % MODES.length]!;
        await elus(hetero);
        const results = await runCallers(
          Array.from({ length: p.callers }, () => ({ mode, service: 'hetero', concurrency: p.concurrency, warmupMs: p.warmupMs, durationMs: p.durationMs })),
          env,
        );
        const u = await elus(hetero);
        const run: ModeRun = {
          goodput: results.reduce((s, r) => s + r.answers / (r.elapsedMs / 1000), 0),
          p99: Math.max(...results.map((r) => r.latency.p99)),
          errors: results.reduce((s, r) => s + r.errors, 0),
          eluSpread: Math.max(...u) / (u.reduce((a, b) => a + b, 0) / u.length),
          elus: u,
        };
        runs.get(mode)!.push(run);
        ctx.log(`  [load 14.1, rep ${rep + 1}] ${LABEL[mode]}: ${fmtInt(run.goodput)} req/s, p99 ${fmtMs(run.p99)}, ELU ${u.map((x) => fmt(x)).join('/')}`);
      }
    }
  } finally {
    await Promise.all(hetero.map((c) => stopChild(c)));
  }
  const med = (mode: CallerMode, f: (r: ModeRun) => number) => median(runs.get(mode)!.map(f));
  const g = (m: CallerMode) => med(m, (r) => r.goodput);
  const p99 = (m: CallerMode) => med(m, (r) => r.p99);
  const spread = (m: CallerMode) => med(m, (r) => r.eluSpread);
  // Ratios are taken within each repetition (its modes ran back to back) and their median is
  // reported: a stall of the shared host during one repetition then moves one ratio, not a median.
  const perRep = (f: (rep: number) => number) => Array.from({ length: p.reps }, (_, rep) => f(rep));
  const at = (m: CallerMode, rep: number) => runs.get(m)![rep]!;
  const noRatios = perRep((i) => at('reports', i).goodput / at('no-reports', i).goodput);
  const lrRatios = perRep((i) => at('reports', i).goodput / at('least-requests', i).goodput);
  const rrRatios = perRep((i) => at('reports', i).p99 / at('round-robin', i).p99);
  const vsNo = median(noRatios);
  const vsLr = median(lrRatios);
  const p99VsRr = median(rrRatios);
  const list = (xs: number[]) => xs.map((x) => fmt(x)).join(', ');
  const setup = `${p.costsMs.length} instances (${p.costsMs.join(', ')} ms CPU per request), ${p.callers} callers x ${p.concurrency} in flight`;
  rows.push(
    row('14.1', 'goodput, default with reports vs without', `${fmtRatio(vsNo)} (${fmtInt(g('reports'))} vs ${fmtInt(g('no-reports'))} req/s)`, '>= 1.2x', vsNo >= 1.2, `per repetition ${list(noRatios)}; ${setup}; every process shares ${ctx.machineCores} cores`),
    row('14.1', 'goodput, default with reports vs leastRequests()', `${fmtRatio(vsLr)} (${fmtInt(g('least-requests'))} req/s)`, '>= 1.0x', vsLr >= 1.0, `per repetition ${list(lrRatios)}`),
    row('14.1', 'p99, default with reports vs roundRobin()', `${fmtRatio(p99VsRr)} (${fmtMs(p99('reports'))} vs ${fmtMs(p99('round-robin'))})`, '<= 0.5x', p99VsRr <= 0.5, `per repetition ${list(rrRatios)}; without reports ${fmtMs(p99('no-reports'))}, leastRequests() ${fmtMs(p99('least-requests'))}`),
    row('14.1', 'event-loop utilization max/mean across instances, with reports', fmt(spread('reports')), '<= 1.15', spread('reports') <= 1.15, `without reports ${fmt(spread('no-reports'))}, leastRequests() ${fmt(spread('least-requests'))}, roundRobin() ${fmt(spread('round-robin'))}`),
  );
  details.push(
    `${setup}, warm-up ${p.warmupMs} ms, window ${p.durationMs} ms, ${p.reps} interleaved repetitions; figures are medians, ratios medians of per-repetition ratios. Goodput: answers per second summed over callers; p99: the worst caller's; ELU: each instance's own event-loop utilization over the window.`,
    '',
    table(
      ['client', 'goodput req/s', 'p99', 'ELU per instance', 'ELU max/mean', 'errors'],
      MODES.map((m) => {
        const last = runs.get(m)!.at(-1)!;
        return [LABEL[m]!, fmtInt(g(m)), fmtMs(p99(m)), last.elus.map((x) => fmt(x)).join(' / '), fmt(spread(m)), String(runs.get(m)!.reduce((s, r) => s + r.errors, 0))];
      }),
    ),
    '',
  );
  data.heterogeneous = Object.fromEntries(runs);

  // --- 14.2 workers as peers vs node:cluster ---------------------------------------------------
  const workerRuns: Record<string, { share: number; rps: number; byPid: Record<string, number> }> = {};
  for (const kind of ['workers', 'cluster'] as const) {
    const [service] = await startInstances([{ mode: kind, service: 'workers2', costMs: p.workerCostMs, workers: 2 }], env, true);
    try {
      const port = (service as ChildProcess & { port?: number }).port;
      const [r] = await runCallers(
        [{ mode: kind === 'workers' ? 'reports' : 'cluster-port', service: 'workers2', ...(port ? { port } : {}), concurrency: p.workerConcurrency, warmupMs: p.warmupMs, durationMs: p.durationMs }],
        env,
      );
      const counts = Object.values(r!.byPid);
      while (counts.length < 2) counts.push(0);
      const mean = counts.reduce((a, b) => a + b, 0) / counts.length;
      workerRuns[kind] = { share: Math.max(...counts) / mean, rps: r!.answers / (r!.elapsedMs / 1000), byPid: r!.byPid };
      ctx.log(`  [load 14.2] ${kind}: ${fmtInt(workerRuns[kind]!.rps)} req/s, per worker ${counts.join('/')}`);
    } finally {
      await stopChild(service!, 5_000);
    }
  }
  const w = workerRuns.workers!;
  const c = workerRuns.cluster!;
  rows.push(
    row('14.2', 'per-worker share max/mean, 2 workers: peerlb workers as peers', fmt(w.share), '<= 1.15', w.share <= 1.15, `node:cluster sharing one port: ${fmt(c.share)}; ${p.workerConcurrency} keep-alive requests in flight`),
    { id: '14.2', scenario: 'Load reports', measure: 'throughput, workers as peers vs node:cluster', result: `${fmtRatio(w.rps / c.rps)} (${fmtInt(w.rps)} vs ${fmtInt(c.rps)} req/s)`, target: '(side by side)', status: 'INFO', note: `${p.workerCostMs} ms CPU per request` },
  );
  details.push(
    `Workers: one caller, ${p.workerConcurrency} keep-alive requests in flight, ${p.workerCostMs} ms CPU per request, window ${p.durationMs} ms.`,
    '',
    table(
      ['service', 'req/s', 'answers per worker', 'max/mean'],
      [
        ['peerlb startService({ workers: 2 }), client picks the worker', fmtInt(w.rps), Object.values(w.byPid).join(' / '), fmt(w.share)],
        ['node:cluster, one shared port, undici Pool', fmtInt(c.rps), Object.values(c.byPid).join(' / '), fmt(c.share)],
      ],
    ),
    '',
  );
  data.workers = workerRuns;

  // --- 14.3 overhead of reports ------------------------------------------------------------------
  const on = await startInstances([0, 1].map(() => ({ mode: 'instance' as const, service: 'overhead-on', costMs: 0 })), env);
  const off = await startInstances([0, 1].map(() => ({ mode: 'instance' as const, service: 'overhead-off', costMs: 0, loadReport: false })), env);
  const rates: Record<'on' | 'off', number[]> = { on: [], off: [] };
  const cpus: Record<'on' | 'off', number[]> = { on: [], off: [] };
  const serverCpus: Record<'on' | 'off', number[]> = { on: [], off: [] };
  const pairs: number[] = [];
  const cpuOf = (children: readonly ChildProcess[]) => children.reduce((sum, c) => sum + (processCpuUs(c.pid!) ?? 0), 0);
  try {
    for (let round = 0; round < p.overheadRounds; round++) {
      const got: Partial<Record<'on' | 'off', number>> = {};
      for (const which of round % 2 === 0 ? (['on', 'off'] as const) : (['off', 'on'] as const)) {
        const servers = which === 'on' ? on : off;
        const before = cpuOf(servers);
        const [r] = await runCallers(
          [{ mode: which === 'on' ? 'reports' : 'no-reports', service: `overhead-${which}`, concurrency: p.overheadConcurrency, warmupMs: p.warmupMs, durationMs: p.durationMs }],
          env,
        );
        got[which] = r!.answers / (r!.elapsedMs / 1000);
        rates[which].push(got[which]!);
        cpus[which].push(r!.cpuUsPerRequest);
        serverCpus[which].push((cpuOf(servers) - before) / r!.total);
      }
      pairs.push(got.on! / got.off!);
    }
  } finally {
    await Promise.all([...on, ...off].map((x) => stopChild(x)));
  }
  // Median of per-round ratios: each round's pair ran back to back, so a slow phase of the shared
  // machine hits both sides of a pair more than it hits both sides of a median of medians.
  const ratio = median(pairs);
  rows.push(
    row('14.3', 'throughput with load reports on vs off (server and client)', `${fmtRatio(ratio)} (${fmtInt(median(rates.on))} vs ${fmtInt(median(rates.off))} req/s)`, '>= 0.95x (within noise)', ratio >= 0.95, `median of per-round ratios ${pairs.map((x) => fmt(x)).join(', ')}; client CPU ${fmt(median(cpus.on), 1)} vs ${fmt(median(cpus.off), 1)} us/req; instances' CPU ${fmt(median(serverCpus.on), 1)} vs ${fmt(median(serverCpus.off), 1)} us/req`),
  );
  details.push(
    `Overhead: 2 instances answering at once, one caller with ${p.overheadConcurrency} in flight, ${p.overheadRounds} rounds alternating on/off (on: instances send reports, the client reads them; off: neither). Instances' CPU from /proc (10 ms ticks) over each caller's whole run, per answer.`,
    '',
  );
  data.overhead = { rates, cpus, serverCpus, pairs };

  return { key: 'load', title: 'Load reports (issue 14)', rows, data, details: details.join('\n') };
}

function row(id: string, measure: string, result: string, target: string, ok: boolean, note: string): Row {
  return { id, scenario: 'Load reports', measure, result, target, status: status(ok), note };
}

async function startInstances(configs: readonly CpuInstanceConfig[], env: NodeJS.ProcessEnv, keepPort = false): Promise<ChildProcess[]> {
  const children = configs.map((config) => spawnEntry('cpu-instance', config, { env }));
  try {
    const ready = await Promise.all(children.map((c) => nextMessage<{ type: 'ready'; port?: number }>(c, 'ready', 60_000)));
    if (keepPort) ready.forEach((r, i) => Object.assign(children[i]!, { port: r.port }));
    return children;
  } catch (err) {
    await Promise.all(children.map((c) => stopChild(c)));
    throw err;
  }
}

/** Each instance's event-loop utilization since the previous call. */
async function elus(children: readonly ChildProcess[]): Promise<number[]> {
  return Promise.all(
    children.map(async (c) => {
      const answer = nextMessage<{ type: 'elu'; utilization: number }>(c, 'elu', 10_000);
      send(c, { type: 'elu' });
      return (await answer).utilization;
    }),
  );
}

/** Starts the callers, lets them go together, returns their results. */
async function runCallers(configs: readonly CpuCallerConfig[], env: NodeJS.ProcessEnv): Promise<CpuCallerResult[]> {
  const children = configs.map((config) => spawnEntry('cpu-caller', config, { env }));
  try {
    await Promise.all(children.map((c) => nextMessage(c, 'ready', 30_000)));
    const results = children.map((c, i) => nextMessage<CpuCallerResult & { type: 'result' }>(c, 'result', configs[i]!.warmupMs + configs[i]!.durationMs + 60_000));
    for (const c of children) send(c, { type: 'go' });
    return await Promise.all(results);
  } finally {
    await Promise.all(children.map((c) => stopChild(c)));
  }
}
