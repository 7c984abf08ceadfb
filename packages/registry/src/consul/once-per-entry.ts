import { createHash, type Hash } from 'node:crypto';
import type { RegistryLogger } from '../types.js';

/** How many distinct entries are remembered; beyond it the oldest are forgotten (and may warn again). */
const REMEMBERED = 10_000;
/** Warnings one read may produce before the rest of that read are summed up in one line. */
const PER_READ = 10;

interface Pending {
  message: () => string;
  details: Record<string, unknown>;
}

/**
 * Warns about dropped registry entries once per distinct entry, not once per read: a watch reads
 * the same answer again after every change, and three bad entries written by another tool would
 * otherwise fill the log (153 lines in 5 s), 100,000 of them block the event loop. An entry is
 * identified by a digest of its content; a changed entry is a new one and warns again. A read
 * whose dropped entries are exactly those of the previous read says nothing, however many there
 * are (more than are remembered one by one).
 */
export class OncePerEntry {
  private readonly seen = new Map<string, true>();
  private readDigest: Hash | undefined;
  /** Per source (one service's reads), the digest of the dropped entries of its last read. */
  private readonly lastReadDigest = new Map<string, string>();
  private pending: Pending[] = [];
  private unlisted = 0;

  constructor(private readonly logger: RegistryLogger) {}

  /** Starts one read. */
  begin(): void {
    this.readDigest = createHash('sha1');
    this.pending = [];
    this.unlisted = 0;
  }

  /** Notes a dropped entry; `message()` is only called if it is reported. */
  report(entry: unknown, message: () => string, details: Record<string, unknown>): void {
    const key = digest(entry);
    this.readDigest?.update(key);
    if (this.seen.has(key)) return;
    this.seen.set(key, true);
    if (this.seen.size > REMEMBERED) this.seen.delete(this.seen.keys().next().value!);
    if (this.pending.length < PER_READ) this.pending.push({ message, details });
    else this.unlisted++;
  }

  /**
   * Ends one read of `what` (one per service: its name keys the repeat check): warns about its new
   * dropped entries, the ones over the per-read limit in one line.
   */
  end(what: string): void {
    const read = this.readDigest?.digest('base64') ?? '';
    this.readDigest = undefined;
    const repeat = read === this.lastReadDigest.get(what);
    this.lastReadDigest.set(what, read);
    if (!repeat) {
      for (const p of this.pending) this.logger.warn(p.message(), p.details);
      if (this.unlisted > 0) {
        this.logger.warn(`dropped ${this.unlisted} more invalid entries from ${what} (not listed one by one)`, { source: 'consul' });
      }
    }
    this.pending = [];
    this.unlisted = 0;
  }
}

function digest(entry: unknown): string {
  let text: string;
  try {
    text = JSON.stringify(entry) ?? String(entry);
  } catch {
    text = String(entry);
  }
  return createHash('sha1').update(text).digest('base64');
}
