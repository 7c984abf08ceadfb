import { lstat } from 'node:fs/promises';
import { join } from 'node:path';
import type { DirectoryState } from './directory.js';
import { listRecordFiles, readRecordFile, statStamp, type ReadOutcome } from './record-files.js';

type Kept = Exclude<ReadOutcome, { kind: 'gone' }>;

// Bounds open file descriptors and stat calls in flight while reading a large directory.
const BATCH = 32;
// File times tick coarsely (a few ms on Linux): a directory changed this close to when we looked
// at it may change again without its stamp moving, so its listing is not trusted next time.
const RACY_MS = 100;
// Even with the directory unchanged, every file is stat'ed again this often: that catches what
// does not touch the directory (a file edited in place, chmod, chown by hand).
const VERIFY_EVERY_MS = 10_000;

/**
 * What the last scans read, so a rescan reads only what changed. Rescans run every 500 ms per
 * watching process; re-reading and re-parsing every file each time cost 41 % of a core with 1,000
 * files and 89 % with 10,000, while nothing changed.
 *
 * Two levels. A file is read again only when its stamp (inode, size, mtime, ctime) changed; record
 * writes are renames, so every new version has a new inode. And a watcher's rescan skips the
 * listing and the per-file stats altogether while the directory's own stamp is unchanged (every
 * create, rename and unlink moves it) and fs.watch reported nothing (an edit in place, a chmod),
 * except every `VERIFY_EVERY_MS` and right after a change too recent to trust. Expiry needs no
 * reading at all: it is evaluated on the cached records against the scan's clock.
 */
export class RecordCache {
  private readonly files = new Map<string, { stamp: string; outcome: Kept }>();
  // Set only by a full scan whose directory stamp can be trusted (see RACY_MS).
  private listing: { dirId: string; dirStamp: string; names: readonly string[]; verifiedAt: number } | undefined;

  /**
   * Every record file of the directory with what it holds, reading only files that changed.
   * `reuseListing`: a watcher's rescan may skip the listing and the stats while the directory is
   * unchanged (its fs.watch calls `invalidate` on any event); `list()` always stats every file.
   */
  async outcomes(dir: string, state: DirectoryState, reuseListing: boolean): Promise<Array<[string, ReadOutcome]>> {
    const listing = this.listing;
    if (
      reuseListing &&
      listing !== undefined &&
      listing.dirId === state.id &&
      listing.dirStamp === state.stamp &&
      performance.now() - listing.verifiedAt < VERIFY_EVERY_MS
    ) {
      return listing.names.map((name) => [name, this.files.get(name)?.outcome ?? { kind: 'gone' }]);
    }
    const verifiedAt = performance.now();
    const names = await listRecordFiles(dir);
    const out: Array<[string, ReadOutcome]> = [];
    for (let i = 0; i < names.length; i += BATCH) {
      const batch = names.slice(i, i + BATCH);
      const read = await Promise.all(batch.map((name) => this.readIfChanged(dir, name)));
      read.forEach((outcome, j) => out.push([batch[j]!, outcome]));
    }
    const present = new Set(names);
    for (const name of this.files.keys()) if (!present.has(name)) this.files.delete(name);
    const trusted = state.statAt - state.mtimeMs > RACY_MS;
    this.listing = trusted ? { dirId: state.id, dirStamp: state.stamp, names, verifiedAt } : undefined;
    return out;
  }

  /** Forgets one file (it was just removed by us). */
  forget(name: string): void {
    this.files.delete(name);
    this.listing = undefined;
  }

  /** Something in the directory changed (an fs.watch event): the next scan stats every file. */
  invalidate(): void {
    this.listing = undefined;
  }

  private async readIfChanged(dir: string, name: string): Promise<ReadOutcome> {
    const cached = this.files.get(name);
    if (cached !== undefined) {
      const stats = await lstat(join(dir, name)).catch(() => undefined);
      if (stats === undefined) {
        this.files.delete(name);
        return { kind: 'gone' };
      }
      if (statStamp(stats) === cached.stamp) return cached.outcome;
    }
    const outcome = await readRecordFile(dir, name);
    if (outcome.kind === 'gone' || outcome.stamp === 'unreadable') this.files.delete(name);
    else this.files.set(name, { stamp: outcome.stamp, outcome });
    return outcome;
  }
}
