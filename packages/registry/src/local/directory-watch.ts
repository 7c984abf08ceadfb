import { watch, type FSWatcher } from 'node:fs';
import { PeerlbError, RegistryUnavailableError } from '../errors.js';
import type { InstanceFilter, RegistryLogger, WatchHandle, WatchListener } from '../types.js';
import { WatchEmitter } from '../watch-emitter.js';
import { codeOf } from './directory.js';
import { nextExpiry } from './record.js';
import { healthyInstances, type Snapshot } from './snapshot.js';

// Coalesces the bursts one atomic write causes (create temp, write, rename) into one rescan.
const DEBOUNCE_MS = 25;
// Rescan just after a lease lapses, not just before it.
const EXPIRY_SLACK_MS = 5;
const MAX_TIMER_MS = 2 ** 31 - 1;

export interface WatchSource {
  readonly dir: string;
  readonly rescanIntervalMs: number;
  readonly logger: RegistryLogger;
  snapshot(): Promise<Snapshot>;
  /** A file event: the next snapshot must not reuse what an unchanged directory stamp suggests. */
  invalidate(): void;
}

interface Subscription {
  readonly service: string;
  readonly filter: InstanceFilter | undefined;
  readonly emitter: WatchEmitter;
  /** Message of the last error delivered: a directory that stays unreadable is reported once, not per rescan. */
  lastError: string | undefined;
}

/**
 * All watches of one `LocalRegistry` share one `fs.watch` on the directory, one periodic rescan
 * and one expiry timer, whatever the number of services watched: a rescan reads the whole
 * directory anyway, so each watch only filters the same snapshot. Started by the first watch,
 * stopped when the last one closes.
 *
 * Three things trigger a rescan: a file event (debounced), the periodic timer (fs.watch is not
 * reliable on every file system, and dies when the directory is removed), and the earliest
 * upcoming expiry among watched instances, so a lapsed TTL or lease shows at once.
 */
export class DirectoryWatch {
  private readonly subscriptions = new Set<Subscription>();
  private fsWatcher: FSWatcher | undefined;
  private watchedDirId: string | undefined;
  private rescanTimer: NodeJS.Timeout | undefined;
  private debounceTimer: NodeJS.Timeout | undefined;
  private expiryTimer: NodeJS.Timeout | undefined;
  private scanning = false;
  private rescanPending = false;
  private fsWatchFailureReported = false;

  constructor(private readonly source: WatchSource) {}

  add(service: string, filter: InstanceFilter | undefined, listener: WatchListener): WatchHandle {
    const subscription: Subscription = {
      service,
      filter,
      emitter: new WatchEmitter(listener, this.source.logger, () => this.remove(subscription)),
      lastError: undefined,
    };
    this.subscriptions.add(subscription);
    if (this.subscriptions.size === 1) this.start();
    // The new watch needs its first delivery; the others' are deduplicated by their emitters. Its
    // caller may be waiting for nothing else (a client's first request), so this one scan holds
    // the process open until it has run; later scans never do.
    this.requestScan(0, true);
    return subscription.emitter.handle();
  }

  /** Closes every watch (used by `LocalRegistry.close`). */
  closeAll(): void {
    for (const subscription of [...this.subscriptions]) subscription.emitter.close();
  }

  private remove(subscription: Subscription): void {
    this.subscriptions.delete(subscription);
    if (this.subscriptions.size === 0) this.stop();
  }

  private start(): void {
    this.rescanTimer = setInterval(() => this.requestScan(0), this.source.rescanIntervalMs);
    this.rescanTimer.unref();
  }

  private stop(): void {
    clearInterval(this.rescanTimer);
    clearTimeout(this.debounceTimer);
    clearTimeout(this.expiryTimer);
    this.rescanTimer = this.debounceTimer = this.expiryTimer = undefined;
    this.closeFsWatcher();
  }

  private requestScan(delayMs: number, keepAlive = false): void {
    if (this.subscriptions.size === 0) return;
    if (this.debounceTimer !== undefined) {
      if (keepAlive) this.debounceTimer.ref();
      return;
    }
    this.debounceTimer = setTimeout(() => {
      this.debounceTimer = undefined;
      // run() handles every failure it can name; this only keeps a stray one from crashing the process.
      this.run().catch(() => {});
    }, delayMs);
    if (!keepAlive) this.debounceTimer.unref();
  }

  /** Scans never overlap; a request during a scan becomes one more scan right after it. */
  private async run(): Promise<void> {
    if (this.scanning) {
      this.rescanPending = true;
      return;
    }
    this.scanning = true;
    try {
      do {
        this.rescanPending = false;
        await this.scanOnce();
      } while (this.rescanPending && this.subscriptions.size > 0);
    } finally {
      this.scanning = false;
    }
  }

  private async scanOnce(): Promise<void> {
    let snapshot: Snapshot;
    try {
      snapshot = await this.source.snapshot();
    } catch (err) {
      const error =
        err instanceof PeerlbError
          ? err
          : new RegistryUnavailableError(`cannot read registry directory ${this.source.dir}: ${codeOf(err)}`, { cause: err });
      for (const subscription of [...this.subscriptions]) {
        if (subscription.lastError === error.message) continue;
        subscription.lastError = error.message;
        subscription.emitter.error(error);
      }
      return;
    }
    if (this.subscriptions.size === 0) return;
    this.ensureFsWatcher(snapshot);
    for (const subscription of [...this.subscriptions]) {
      subscription.lastError = undefined;
      subscription.emitter.instances(
        healthyInstances(snapshot, subscription.service, subscription.filter, this.source.logger),
      );
    }
    this.scheduleExpiryScan(snapshot);
  }

  private ensureFsWatcher(snapshot: Snapshot): void {
    if (this.fsWatcher !== undefined && this.watchedDirId === snapshot.dir.id && !snapshot.dir.created) return;
    this.closeFsWatcher();
    try {
      const watcher = watch(this.source.dir, { persistent: false }, (_event, filename) => {
        // Temp files come and go on every write; the rename that publishes one names the record.
        if (typeof filename === 'string' && filename.startsWith('.') && filename.endsWith('.tmp')) return;
        this.source.invalidate();
        this.requestScan(DEBOUNCE_MS);
      });
      watcher.on('error', () => {
        if (this.fsWatcher !== watcher) return;
        this.source.invalidate();
        this.closeFsWatcher();
        this.requestScan(DEBOUNCE_MS);
      });
      watcher.unref();
      this.fsWatcher = watcher;
      this.watchedDirId = snapshot.dir.id;
      // A file written after the snapshot read the directory but before this watch began raised
      // no event: scan once more (only ever called from within run(), which picks this up).
      this.rescanPending = true;
    } catch (err) {
      if (!this.fsWatchFailureReported) {
        this.fsWatchFailureReported = true;
        this.source.logger.warn(
          `local registry: fs.watch unavailable on ${this.source.dir} (${codeOf(err)}); relying on rescans every ${this.source.rescanIntervalMs} ms`,
        );
      }
    }
  }

  private closeFsWatcher(): void {
    const watcher = this.fsWatcher;
    this.fsWatcher = undefined;
    this.watchedDirId = undefined;
    watcher?.close();
  }

  private scheduleExpiryScan(snapshot: Snapshot): void {
    clearTimeout(this.expiryTimer);
    this.expiryTimer = undefined;
    const services = new Set([...this.subscriptions].map((s) => s.service));
    let next = Infinity;
    for (const record of snapshot.records) {
      if (services.has(record.instance.service)) next = Math.min(next, nextExpiry(record, snapshot.now));
    }
    if (!Number.isFinite(next)) return;
    const delay = Math.min(MAX_TIMER_MS, Math.max(0, next - snapshot.now) + EXPIRY_SLACK_MS);
    this.expiryTimer = setTimeout(() => {
      this.expiryTimer = undefined;
      this.requestScan(0);
    }, delay);
    this.expiryTimer.unref();
  }
}
