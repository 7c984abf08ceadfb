import {
  AbortedError,
  type Registry,
  type RegistryLogger,
  type ServiceInstance,
  type WatchHandle,
  type WatchUpdate,
} from '@peerlb/registry';

export interface DiscoveryRules {
  /**
   * How long the last good list is served while the registry keeps failing, counted from the
   * first error. After that the service has no peers (requests fail with `PEERLB_NO_PEERS`, the
   * registry error as cause) until the registry answers again. `Infinity`: serve it forever.
   */
  readonly maxStalenessMs: number;
  /**
   * An empty answer that replaces a non-empty list is held back this long: a registry that
   * restarts or loses its leader may briefly answer "no instances" while they are all alive.
   * The empty list is applied when the grace period passes with no non-empty answer, or at once
   * when a second empty answer confirms it. `0` applies empty answers immediately.
   */
  readonly emptyGraceMs: number;
}

/** What the watch tells its owner: the list to serve, and changes of the stale state. */
export interface DiscoverySink {
  instances(instances: readonly ServiceInstance[]): void;
  staleChanged(state: DiscoveryStatus): void;
}

export interface DiscoveryStatus {
  readonly seen: boolean;
  /** The registry is failing; the list served is the last good one. */
  readonly stale: boolean;
  /** Stale for longer than `maxStalenessMs`: the list is no longer served. */
  readonly expired: boolean;
  /** When the registry started failing (epoch ms), while stale. */
  readonly staleSince: number | undefined;
  /** The registry's last error, cleared by the next good answer. */
  readonly lastError: Error | undefined;
  /** When the last good answer arrived (epoch ms). */
  readonly updatedAt: number | undefined;
  /** An empty answer is being held back (see `emptyGraceMs`). */
  readonly emptyPending: boolean;
}

/**
 * One registry watch for one service, shared by every request to it. Keeps the last good list,
 * tracks staleness on registry errors, and distrusts a sudden empty answer. It never calls the
 * registry per request: requests only read what the watch delivered.
 */
export class ServiceWatch {
  private handle: WatchHandle | undefined;
  private closed = false;
  private current: readonly ServiceInstance[] = [];
  private seen = false;
  private stale = false;
  private expired = false;
  private staleSince: number | undefined;
  private lastError: Error | undefined;
  private errors = 0;
  private updatedAt: number | undefined;
  private emptyPending = false;
  private emptyTimer: NodeJS.Timeout | undefined;
  private expiryTimer: NodeJS.Timeout | undefined;
  private waiters: Set<() => void> | undefined;

  constructor(
    private readonly registry: Registry,
    readonly service: string,
    private readonly rules: DiscoveryRules,
    private readonly sink: DiscoverySink,
    private readonly logger: RegistryLogger,
  ) {}

  start(): void {
    if (this.handle || this.closed) return;
    try {
      this.handle = this.registry.watch(this.service, (update) => this.onUpdate(update));
    } catch (err) {
      // A registry that cannot even start a watch (closed, bad name) behaves like one that errors.
      this.onUpdate({ ok: false, error: err instanceof Error ? err : new Error(String(err)), at: Date.now() });
    }
  }

  status(): DiscoveryStatus {
    return {
      seen: this.seen,
      stale: this.stale,
      expired: this.expired,
      staleSince: this.staleSince,
      lastError: this.lastError,
      updatedAt: this.updatedAt,
      emptyPending: this.emptyPending,
    };
  }

  get hasBeenSeen(): boolean {
    return this.seen;
  }

  get error(): Error | undefined {
    return this.lastError;
  }

  /** Registry errors seen by this watch since it started (the metric `peerlb.client.registry.errors`). */
  get errorCount(): number {
    return this.errors;
  }

  /** Resolves once the registry has answered for this service at least once (or the watch closed). */
  waitUntilSeen(signal: AbortSignal): Promise<void> {
    if (this.seen || this.closed) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      if (signal.aborted) return reject(new AbortedError(signal.reason));
      const waiters = (this.waiters ??= new Set());
      const onAbort = () => {
        waiters.delete(done);
        reject(new AbortedError(signal.reason));
      };
      const done = () => {
        signal.removeEventListener('abort', onAbort);
        resolve();
      };
      waiters.add(done);
      signal.addEventListener('abort', onAbort, { once: true });
    });
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.handle?.close();
    this.handle = undefined;
    this.clearEmptyTimer();
    this.clearExpiryTimer();
    // Waiting requests wake up and find the service closed, rather than hang to their deadline.
    const waiters = this.waiters;
    this.waiters = undefined;
    if (waiters) for (const wake of waiters) wake();
  }

  private onUpdate(update: WatchUpdate): void {
    if (this.closed) return;
    if (update.ok) this.onInstances(update.instances, update.at);
    else this.onError(update.error, update.at);
  }

  private onInstances(instances: readonly ServiceInstance[], at: number): void {
    const wasStale = this.stale;
    this.stale = false;
    this.expired = false;
    this.staleSince = undefined;
    this.lastError = undefined;
    this.updatedAt = at;
    this.clearExpiryTimer();

    if (instances.length === 0 && this.current.length > 0 && this.rules.emptyGraceMs > 0) {
      if (!this.emptyPending) {
        this.emptyPending = true;
        this.logger.warn(`registry answered no instances for "${this.service}": holding the last list`, {
          service: this.service,
          graceMs: this.rules.emptyGraceMs,
        });
        this.emptyTimer = setTimeout(() => {
          this.emptyTimer = undefined;
          this.apply([]);
        }, this.rules.emptyGraceMs);
        this.emptyTimer.unref();
        if (wasStale) this.sink.staleChanged(this.status());
        return;
      }
      // A second empty answer (the watch only repeats one after an error) confirms it.
    }
    this.apply(instances);
    if (wasStale) this.sink.staleChanged(this.status());
  }

  private apply(instances: readonly ServiceInstance[]): void {
    this.clearEmptyTimer();
    this.current = instances;
    this.sink.instances(instances);
    if (!this.seen) {
      this.seen = true;
      const waiters = this.waiters;
      this.waiters = undefined;
      if (waiters) for (const wake of waiters) wake();
    }
  }

  private onError(error: Error, at: number): void {
    this.lastError = error;
    this.errors++;
    if (this.stale) return;
    if (!this.seen) {
      // Nothing to serve yet: waiting requests keep waiting (until their deadline) and carry
      // this error as the cause of their NoPeersError.
      return;
    }
    this.stale = true;
    this.staleSince = at;
    this.logger.warn(`registry failing for "${this.service}": serving the last known list`, {
      service: this.service,
      error: error.message,
    });
    if (Number.isFinite(this.rules.maxStalenessMs)) {
      this.expiryTimer = setTimeout(() => {
        this.expiryTimer = undefined;
        this.expired = true;
        this.sink.staleChanged(this.status());
      }, this.rules.maxStalenessMs);
      this.expiryTimer.unref();
    }
    this.sink.staleChanged(this.status());
  }

  private clearEmptyTimer(): void {
    this.emptyPending = false;
    if (this.emptyTimer) clearTimeout(this.emptyTimer);
    this.emptyTimer = undefined;
  }

  private clearExpiryTimer(): void {
    if (this.expiryTimer) clearTimeout(this.expiryTimer);
    this.expiryTimer = undefined;
  }
}
