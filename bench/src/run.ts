/**
 * `pnpm bench` / `pnpm bench:smoke`: runs every scenario of issue 6 and writes
 * `<out>/latest.json` and `<out>/latest.md` (default out: bench/results).
 *
 *   node bench/dist/bench/src/run.js [--smoke] [--out <dir>] [--only throughput,degraded,...]
 *
 * With --only (not --smoke), the scenarios run replace their rows and sections in an existing
 * full report <out>/latest.md; the others are kept and the header says so.
 *
 * (compiled by `tsc -p bench`; the root scripts `bench` and `bench:smoke` build and run it).
 *
 * Exit code 1 when a scenario could not run (a missed target is a result, not a failure).
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { machineInfo } from './machine.js';
import { FULL, SMOKE } from './params.js';
import { markdownReport, mergeReports, summaryTable, type BenchReport } from './report.js';
import type { BenchContext, Row, ScenarioOutcome } from './scenario.js';
import { callersScenario } from './scenarios/callers.js';
import { degradedScenario } from './scenarios/degraded.js';
import { discoveryScenario } from './scenarios/discovery.js';
import { failoverScenario } from './scenarios/failover.js';
import { loadReportsScenario } from './scenarios/load-reports.js';
import { scaleScenario } from './scenarios/scale.js';
import { deadlineScenario, hedgingScenario } from './scenarios/tail-deadline.js';
import { throughputScenarios } from './scenarios/throughput.js';

const SCENARIOS: ReadonlyArray<{
  key: string;
  ids: readonly string[];
  title: string;
  run: (ctx: BenchContext) => Promise<ScenarioOutcome>;
}> = [
  { key: 'throughput', ids: ['1', '2', '3', 'ref'], title: 'Scenarios 1-3 and the naive reference', run: throughputScenarios },
  { key: 'degraded', ids: ['4'], title: 'Scenario 4: degraded peers', run: degradedScenario },
  { key: 'failover', ids: ['5'], title: 'Scenario 5: failover', run: failoverScenario },
  { key: 'discovery', ids: ['6'], title: 'Scenario 6: discovery', run: discoveryScenario },
  { key: 'scale', ids: ['7'], title: 'Scenario 7: scale', run: scaleScenario },
  { key: 'callers', ids: ['8'], title: 'Scenario 8: callers', run: callersScenario },
  { key: 'hedging', ids: ['15.1', '15.2'], title: 'Scenario 15.1-15.2: hedged requests', run: hedgingScenario },
  { key: 'deadline', ids: ['15.3'], title: 'Scenario 15.3: deadlines across hops', run: deadlineScenario },
  { key: 'load', ids: ['14.1', '14.2', '14.3'], title: 'Load reports (issue 14)', run: loadReportsScenario },
];

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      smoke: { type: 'boolean', default: false },
      out: { type: 'string' },
      only: { type: 'string' },
    },
  });
  const params = values.smoke ? SMOKE : FULL;
  // Compiled to bench/dist/bench/src/run.js: bench/results is three levels up.
  const out = resolve(values.out ?? fileURLToPath(new URL('../../../results', import.meta.url)));
  const only = values.only ? new Set(values.only.split(',')) : undefined;
  const tmp = mkdtempSync(join(tmpdir(), 'peerlb-bench-'));
  const started = Date.now();
  const machine = machineInfo();
  const log = (line: string) => console.log(`[${((Date.now() - started) / 1000).toFixed(1).padStart(6)} s] ${line}`);
  const ctx: BenchContext = { params, tmp, machineCores: machine.cores, log };
  log(
    `peerlb bench${params.smoke ? ' (smoke)' : ''}: ${machine.cores} cores, ${machine.cpuModel}, Node ${machine.node}, load ${machine.loadAverage.join('/')}`,
  );

  const outcomes: ScenarioOutcome[] = [];
  const summary: Row[] = [];
  const data: Record<string, unknown> = {};
  const failures: Record<string, string> = {};
  try {
    for (const scenario of SCENARIOS) {
      if (only && !only.has(scenario.key)) continue;
      const t = Date.now();
      log(`${scenario.title} ...`);
      try {
        const outcome = await scenario.run(ctx);
        outcomes.push(outcome);
        summary.push(...outcome.rows);
        data[outcome.key] = outcome.data;
      } catch (err) {
        const message = err instanceof Error ? (err.stack ?? err.message) : String(err);
        failures[scenario.key] = message;
        log(`${scenario.title} FAILED: ${message}`);
        for (const id of scenario.ids) {
          summary.push({
            id,
            scenario: scenario.title,
            measure: 'scenario could not run',
            result: 'error',
            target: '',
            status: 'MISS',
            note: message.split('\n')[0]!,
          });
        }
      }
      log(`${scenario.title} done in ${((Date.now() - t) / 1000).toFixed(1)} s`);
    }
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }

  const report: BenchReport = {
    version: 1,
    smoke: params.smoke,
    startedAt: new Date(started).toISOString(),
    durationMs: Date.now() - started,
    machine,
    loadAverageAtEnd: loadavg().map((l) => Math.round(l * 100) / 100),
    params,
    summary,
    scenarios: data,
    failures,
  };
  mkdirSync(out, { recursive: true });
  let markdown = markdownReport(report, outcomes);
  const previousMd = join(out, 'latest.md');
  if (only && !report.smoke && existsSync(previousMd)) {
    const previous = readFileSync(previousMd, 'utf8');
    if (!previous.includes('> **Smoke run**')) {
      markdown = mergeReports(
        previous,
        report,
        outcomes,
        SCENARIOS.filter((s) => only.has(s.key)),
        SCENARIOS.map((s) => s.title),
      );
    }
  }
  writeFileSync(join(out, 'latest.json'), `${JSON.stringify(report, null, 2)}\n`);
  writeFileSync(previousMd, markdown);
  console.log(`\n${summaryTable(summary)}\n`);
  log(`wrote ${join(out, 'latest.md')} and latest.json`);
  return Object.keys(failures).length > 0 ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
