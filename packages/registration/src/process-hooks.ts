/** The part of `process` the hooks use; injectable so the logic is testable without exiting. */
export interface ProcessLike {
  on(event: string, listener: (...args: any[]) => void): unknown;
  off(event: string, listener: (...args: any[]) => void): unknown;
  exit(code?: number): void;
}

export interface HookParticipant {
  /** Graceful shutdown on SIGINT/SIGTERM (drain and close). */
  shutdown(): Promise<void>;
  /** Best-effort, bounded cleanup when the process is crashing. */
  crash(): Promise<void>;
}

const SIGNALS = ['SIGINT', 'SIGTERM'] as const;
const SIGNAL_NUMBERS: Record<(typeof SIGNALS)[number], number> = { SIGINT: 2, SIGTERM: 15 };

/**
 * One set of process listeners shared by every started service in the process, installed when
 * the first participant joins and removed when the last leaves, so `import` alone installs
 * nothing and a closed service leaves the process as it found it.
 *
 * First SIGINT/SIGTERM: every participant shuts down, then exit 0 (1 if one failed).
 * A second one while shutting down: exit at once with 128 + signal number, unless it comes
 * within `repeatWindowMs` of the first: package runners (pnpm, npm) forward a terminal's Ctrl-C
 * to a child that also got it from the terminal, so one keypress arrives twice, milliseconds
 * apart, and must not cut the drain short.
 * uncaughtException/unhandledRejection: the error is printed, participants get `crashTimeoutMs`
 * to deregister, exit 1.
 */
export class ProcessHooks {
  private readonly signalParticipants = new Set<HookParticipant>();
  private readonly crashParticipants = new Set<HookParticipant>();
  private signalsInstalled = false;
  private crashInstalled = false;
  private shuttingDown = false;
  private firstSignalAt = 0;
  private crashing = false;

  constructor(
    private readonly proc: ProcessLike,
    private readonly options: {
      crashTimeoutMs: number;
      printError: (message: string) => void;
      /** A repeat signal this soon after the first is the same keypress (default 500 ms). */
      repeatWindowMs?: number;
      now?: () => number;
    },
  ) {}

  /** Adds `p` to signal handling; returns the remover. */
  onSignals(p: HookParticipant): () => void {
    this.signalParticipants.add(p);
    if (!this.signalsInstalled) {
      for (const s of SIGNALS) this.proc.on(s, this.handleSignal);
      this.signalsInstalled = true;
    }
    return () => {
      this.signalParticipants.delete(p);
      // Mid-shutdown the listeners stay: a second signal must still mean "exit now".
      if (this.signalParticipants.size === 0 && this.signalsInstalled && !this.shuttingDown) {
        for (const s of SIGNALS) this.proc.off(s, this.handleSignal);
        this.signalsInstalled = false;
      }
    };
  }

  /** Adds `p` to crash handling; returns the remover. */
  onCrash(p: HookParticipant): () => void {
    this.crashParticipants.add(p);
    if (!this.crashInstalled) {
      this.proc.on('uncaughtException', this.handleUncaught);
      this.proc.on('unhandledRejection', this.handleRejection);
      this.crashInstalled = true;
    }
    return () => {
      this.crashParticipants.delete(p);
      if (this.crashParticipants.size === 0 && this.crashInstalled && !this.crashing) {
        this.proc.off('uncaughtException', this.handleUncaught);
        this.proc.off('unhandledRejection', this.handleRejection);
        this.crashInstalled = false;
      }
    };
  }

  private readonly handleSignal = (signal: (typeof SIGNALS)[number]): void => {
    const now = (this.options.now ?? performance.now.bind(performance))();
    if (this.shuttingDown) {
      if (now - this.firstSignalAt < (this.options.repeatWindowMs ?? 500)) return;
      this.proc.exit(128 + (SIGNAL_NUMBERS[signal] ?? 15));
      return;
    }
    this.shuttingDown = true;
    this.firstSignalAt = now;
    const participants = [...this.signalParticipants];
    void Promise.allSettled(participants.map((p) => p.shutdown())).then((results) => {
      this.proc.exit(results.every((r) => r.status === 'fulfilled') ? 0 : 1);
    });
  };

  private readonly handleUncaught = (error: unknown): void => this.crash('uncaughtException', error);
  private readonly handleRejection = (reason: unknown): void => this.crash('unhandledRejection', reason);

  private crash(what: string, error: unknown): void {
    const text = error instanceof Error ? (error.stack ?? error.message) : String(error);
    this.options.printError(`[peerlb] ${what}: ${text}`);
    if (this.crashing) return;
    this.crashing = true;
    // Deliberately not unref'd: it is what ends the process if cleanup hangs.
    const force = setTimeout(() => this.proc.exit(1), this.options.crashTimeoutMs);
    const participants = [...this.crashParticipants];
    void Promise.allSettled(participants.map((p) => p.crash())).then(() => {
      clearTimeout(force);
      this.proc.exit(1);
    });
  }
}

let shared: ProcessHooks | undefined;

/** The process-wide hooks, created on first use (never at import). */
export function processHooks(): ProcessHooks {
  shared ??= new ProcessHooks(process, {
    crashTimeoutMs: 3_000,
    printError: (message) => process.stderr.write(`${message}\n`),
  });
  return shared;
}
