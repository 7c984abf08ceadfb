import { createHash } from 'node:crypto';
import type { RegistryLogger } from '../types.js';

/** How many distinct entries are remembered; beyond it the oldest are forgotten (and may warn again). */
const REMEMBERED = 10_000;
/** Warnings one read may produce before the rest of that read are summed up in one line. */
const PER_READ = 10;

/**
 * Warns about a dropped registry entry once per distinct entry, not once per read: a watch reads
 * the same answer again after every change, and three bad entries written by another tool would
 * otherwise fill the log (153 lines in 5 s), 100,000 of them block the event loop. An entry is
 * identified by a digest of its content; a changed entry is a new one and warns again.
 */
export class OncePerEntry {
  private readonly seen = new Map<string, true>();
  private pending = 0;
  private emitted = 0;

  constructor(private readonly logger: RegistryLogger) {}

  /** Starts one read: the per-read limit counts from here. */
  begin(): void {
    this.emitted = 0;
    this.pending = 0;
  }

  /** Warns with `message()` unless `entry` was reported before. */
  report(entry: unknown, message: () => string, details: Record<string, unknown>): void {
    const key = digest(entry);
    if (this.seen.has(key)) return;
    this.seen.set(key, true);
    if (this.seen.size > REMEMBERED) this.seen.delete(this.seen.keys().next().value!);
    if (this.emitted < PER_READ) {
      this.emitted++;
      this.logger.warn(message(), details);
    } else {
      this.pending++;
    }
  }

  /** Ends one read: entries over the per-read limit are summed up in one line. */
  end(what: string): void {
    if (this.pending > 0) {
      this.logger.warn(`dropped ${this.pending} more invalid entries from ${what} (not listed one by one)`, { source: 'consul' });
    }
    this.pending = 0;
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
