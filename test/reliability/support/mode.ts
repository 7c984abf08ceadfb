/**
 * One suite, two lengths. `pnpm test` runs the bounded CI version; `pnpm soak` sets
 * `PEERLB_SOAK=1` and the same tests run for minutes. Durations can be tuned one by one with
 * `PEERLB_SOAK_CHURN_MS` and `PEERLB_SOAK_OUTAGE_MS` (soak mode only).
 */
export const SOAK = process.env.PEERLB_SOAK === '1';

function fromEnv(name: string, fallback: number): number {
  const raw = process.env[name];
  if (!SOAK || raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value <= 0) throw new Error(`${name} must be a positive number of milliseconds`);
  return value;
}

export const MODE = Object.freeze({
  name: SOAK ? 'soak' : 'ci',
  /** How long instances are killed and started under load. */
  churnMs: fromEnv('PEERLB_SOAK_CHURN_MS', SOAK ? 180_000 : 12_000),
  /** Load before the churn starts, ending with the heap measure everything is compared with. */
  warmUpMs: SOAK ? 10_000 : 3_000,
  /** How long the registry stays down (or garbled) under load. */
  outageMs: fromEnv('PEERLB_SOAK_OUTAGE_MS', SOAK ? 30_000 : 4_000),
  /** fast-check runs per property, and the time a fuzz test may take with them. */
  fuzzRuns: SOAK ? 2_000 : 150,
  fuzzTimeoutMs: SOAK ? 900_000 : 60_000,
  /** Upper bound for one long test, with room for a loaded machine. */
  testTimeoutMs(expectedMs: number): number {
    return Math.max(60_000, expectedMs * 3);
  },
});

/** A figure for the README: printed as one line so the last run's numbers can be copied from the log. */
export function reportFigures(test: string, figures: Record<string, unknown>): void {
  console.log(`[reliability:${MODE.name}] ${test} ${JSON.stringify(figures)}`);
}
