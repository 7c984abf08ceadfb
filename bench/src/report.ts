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

/**
 * A run of some scenarios only (`--only`) merged into the previous report (its markdown; the
 * JSON beside it is not kept in git): the scenarios run replace their summary rows and detail
 * sections, the others are kept as they were, and the header says which figures come from which run.
 */
export function mergeReports(
  previousMarkdown: string,
  current: BenchReport,
  outcomes: readonly ScenarioOutcome[],
  ran: ReadonlyArray<{ ids: readonly string[]; title: string }>,
  /** Every scenario's title in run order, to keep the detail sections in that order. */
  order: readonly string[] = [],
): string {
  const ranIds = new Set(ran.flatMap((s) => s.ids));
  const ranTitles = new Set(ran.map((s) => s.title));
  const summary: Row[] = [];
  const added = new Set<string>();
  for (const r of summaryRows(previousMarkdown)) {
    if (!ranIds.has(r.id)) summary.push(r);
    else if (!added.has(r.id)) {
      summary.push(...current.summary.filter((c) => c.id === r.id));
      added.add(r.id);
    }
  }
  summary.push(...current.summary.filter((c) => !added.has(c.id)));
  // Outcome titles may extend the scenario's ("Scenarios 1-3 ...: throughput and overhead").
  const sections = detailSections(previousMarkdown).filter((s) => ![...ranTitles].some((t) => s.title.startsWith(t)));
  const rank = (title: string) => {
    const i = order.findIndex((t) => title.startsWith(t));
    return i < 0 ? order.length : i;
  };
  const all = [...sections.map((s) => ({ key: '', title: s.title, rows: [], data: null, details: s.body })), ...outcomes];
  const body = markdownReport({ ...current, summary }, all.sort((a, b) => rank(a.title) - rank(b.title)));
  // Keep the previous run's header (when and where the other rows were measured).
  const header = previousMarkdown.slice(0, previousMarkdown.indexOf('\n## Summary'));
  const note =
    `Partial re-run on ${current.startedAt} (\`--only\`, ${(current.durationMs / 1000).toFixed(0)} s, load average at end ` +
    `${current.loadAverageAtEnd.join(' / ')}): ${ran.map((s) => s.title).join(', ')}: its rows replace those of earlier runs; every other row is from the run(s) above.`;
  return `${header.trimEnd()}\n\n${note}\n${body.slice(body.indexOf('\n## Summary'))}`;
}

function summaryRows(markdown: string): Row[] {
  const start = markdown.indexOf('\n## Summary\n');
  if (start < 0) return [];
  const end = markdown.indexOf('\n## ', start + 5);
  const lines = markdown.slice(start, end < 0 ? undefined : end).split('\n').filter((l) => l.startsWith('| '));
  return lines.slice(2).map((line) => {
    const cells = line
      .slice(2, -2)
      .split(/(?<!\\) \| /)
      .map((c) => c.replace(/\\\|/g, '|'));
    const [id = '', scenario = '', measure = '', result = '', target = '', statusCell = '', note = ''] = cells;
    return { id, scenario, measure, result, target, status: statusCell as Row['status'], note };
  });
}

function detailSections(markdown: string): Array<{ title: string; body: string }> {
  const start = markdown.indexOf('\n## Details\n');
  if (start < 0) return [];
  const end = markdown.indexOf('\n## Run parameters', start);
  const block = markdown.slice(start + '\n## Details\n'.length, end < 0 ? undefined : end);
  return block
    .split(/\n(?=### )/)
    .map((part) => part.trim())
    .filter((part) => part.startsWith('### '))
    .map((part) => {
      const nl = part.indexOf('\n');
      return { title: part.slice(4, nl < 0 ? undefined : nl).trim(), body: nl < 0 ? '' : part.slice(nl + 1).trim() };
    });
}
