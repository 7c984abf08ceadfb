import type { MachineInfo } from './machine.js';
import type { BenchParams } from './params.js';
import { table, type Row, type ScenarioOutcome } from './scenario.js';

export interface BenchReport {
  readonly version: 1;
  readonly smoke: boolean;
  readonly startedAt: string;
  readonly durationMs: number;
  readonly machine: MachineInfo;
  readonly loadAverageAtEnd: readonly number[];
  readonly params: BenchParams;
  /** The summary table, one row per figure; `id` is the scenario number or "ref". */
  readonly summary: readonly Row[];
  readonly scenarios: Record<string, unknown>;
  /** Scenarios that threw, with the error. */
  readonly failures: Record<string, string>;
}

export function summaryTable(rows: readonly Row[]): string {
  return table(
    ['#', 'scenario', 'measure', 'result', 'target', 'status', 'note'],
    rows.map((r) => [r.id, r.scenario, r.measure, r.result, r.target, r.status, r.note]),
  );
}

export function markdownReport(report: BenchReport, outcomes: readonly ScenarioOutcome[]): string {
  const m = report.machine;
  const lines = [
    '# peerlb benchmark results',
    '',
    `Written by \`pnpm ${report.smoke ? 'bench:smoke' : 'bench'}\` (bench/src/run.ts) on ${report.startedAt}, in ` +
      `${(report.durationMs / 1000).toFixed(0)} s. Every comparison below was made inside this one run, against ` +
      'baselines the script started itself on 127.0.0.1; upstreams are separate node:http processes.',
    '',
    `Machine: ${m.cores} cores (${m.cpuModel}), ${m.memoryGiB} GiB, ${m.os}; Node.js ${m.node} (V8 ${m.v8}). ` +
      `Load average at start ${m.loadAverage.join(' / ')}, at end ${report.loadAverageAtEnd.join(' / ')} ` +
      '(the machine is shared: runs are interleaved and repeated, medians reported).',
    '',
  ];
  if (report.smoke) {
    lines.push(
      '> **Smoke run**: tiny counts, every scenario exercised once; the figures mean nothing and no target is judged by them. nginx is not started in smoke runs.',
      '',
    );
  }
  lines.push('## Summary', '', summaryTable(report.summary), '');
  const failed = Object.entries(report.failures);
  if (failed.length > 0) {
    lines.push('## Scenarios that failed to run', '');
    for (const [key, error] of failed) lines.push(`- ${key}: ${error.split('\n')[0]}`);
    lines.push('');
  }
  lines.push('## Details', '');
  for (const outcome of outcomes) lines.push(`### ${outcome.title}`, '', outcome.details, '');
  lines.push('## Run parameters', '', '```json', JSON.stringify(report.params, null, 2), '```', '');
  return lines.join('\n');
}
