import type { BenchParams } from './params.js';

export type Status = 'PASS' | 'MISS' | 'INFO' | 'SKIP';

/** One line of the summary table. */
export interface Row {
  /** Scenario number from the issue ("1".."8"), or "ref" for the naive reference. */
  readonly id: string;
  readonly scenario: string;
  readonly measure: string;
  readonly result: string;
  readonly target: string;
  readonly status: Status;
  /** Why a target was missed, or what a figure means. */
  readonly note: string;
}

export interface ScenarioOutcome {
  /** JSON key. */
  readonly key: string;
  readonly title: string;
  readonly rows: Row[];
  /** Everything measured, for the JSON output. */
  readonly data: unknown;
  /** Markdown details section (tables per mode). */
  readonly details: string;
}

export interface BenchContext {
  readonly params: BenchParams;
  /** A private temporary directory for this run. */
  readonly tmp: string;
  /** Cores of this machine (every process of the bench shares them). */
  readonly machineCores: number;
  log(line: string): void;
}

export function status(ok: boolean): Status {
  return ok ? 'PASS' : 'MISS';
}

const int = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });

export function fmtInt(value: number): string {
  return Number.isFinite(value) ? int.format(value) : 'n/a';
}

export function fmt(value: number, digits = 2): string {
  return Number.isFinite(value) ? value.toFixed(digits) : 'n/a';
}

export function fmtRatio(value: number): string {
  return Number.isFinite(value) ? `${value.toFixed(2)}x` : 'n/a';
}

export function fmtMs(value: number): string {
  if (!Number.isFinite(value)) return 'n/a';
  return value >= 100 ? `${value.toFixed(0)} ms` : value >= 10 ? `${value.toFixed(1)} ms` : `${value.toFixed(2)} ms`;
}

export function fmtBytes(value: number): string {
  if (!Number.isFinite(value)) return 'n/a';
  const abs = Math.abs(value);
  if (abs >= 2 ** 20) return `${(value / 2 ** 20).toFixed(1)} MiB`;
  if (abs >= 2 ** 10) return `${(value / 2 ** 10).toFixed(1)} KiB`;
  return `${value.toFixed(0)} B`;
}

/** A markdown table from a header and rows of cells. */
export function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const escape = (cell: string) => cell.replace(/\|/g, '\\|').replace(/\n/g, ' ');
  const line = (cells: readonly string[]) => `| ${cells.map(escape).join(' | ')} |`;
  return [line(header), line(header.map(() => '---')), ...rows.map(line)].join('\n');
}
