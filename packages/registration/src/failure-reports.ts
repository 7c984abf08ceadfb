/**
 * Decides when a recurring failure is worth a report (a health function that throws, a heartbeat
 * the registry cannot record). Both recur on every heartbeat: reporting each would flood the log,
 * reporting none left the instance failing with nothing saying why. So: the first failure is
 * reported at once; the same message again at most once per `repeatMs`; any message at most once
 * per `minGapMs`. What was held back is counted and said with the next report.
 */
export class FailureReports {
  private lastMessage: string | undefined;
  private lastAt = Number.NEGATIVE_INFINITY;
  private held = 0;

  constructor(
    private readonly options: { repeatMs: number; minGapMs: number; now?: () => number } = {
      repeatMs: 60_000,
      minGapMs: 5_000,
    },
  ) {}

  /** Undefined when this failure is held back; else how many were held back since the last report. */
  admit(message: string): { heldBack: number } | undefined {
    const now = (this.options.now ?? performance.now.bind(performance))();
    const since = now - this.lastAt;
    const due = message === this.lastMessage ? since >= this.options.repeatMs : since >= this.options.minGapMs;
    if (!due) {
      this.held++;
      return undefined;
    }
    const heldBack = this.held;
    this.held = 0;
    this.lastMessage = message;
    this.lastAt = now;
    return { heldBack };
  }
}
