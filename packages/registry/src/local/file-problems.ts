import type { RegistryLogger } from '../types.js';

/**
 * Warns once per bad file version: rescans run every few hundred milliseconds, and a file that
 * stays broken must not flood the log. A file that changes (new stamp) or comes back after being
 * removed is reported again.
 */
export class FileProblems {
  private readonly reported = new Map<string, string>();

  constructor(
    private readonly dir: string,
    private readonly logger: RegistryLogger,
  ) {}

  report(name: string, stamp: string, reason: string): void {
    if (this.reported.get(name) === stamp) return;
    this.reported.set(name, stamp);
    this.logger.warn(`local registry: skipped ${name} in ${this.dir}: ${reason}`, { file: name, reason });
  }

  /** Forgets files that are gone or fine now. `bad` holds the names that were skipped in this scan. */
  retainOnly(bad: ReadonlySet<string>): void {
    for (const name of this.reported.keys()) if (!bad.has(name)) this.reported.delete(name);
  }
}
