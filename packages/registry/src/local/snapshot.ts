import type { InstanceFilter, RegistryLogger, ServiceInstance } from '../types.js';
import { acceptInstances } from '../validate.js';
import { openRegistryDirectory, type DirectoryState } from './directory.js';
import type { FileProblems } from './file-problems.js';
import type { RecordCache } from './record-cache.js';
import { removeRecordFile } from './record-files.js';
import { isHealthy, recordFileName, shouldReap, type LocalRecord } from './record.js';
import type { WriteProbe } from './write-probe.js';

/** Every valid record in the directory at one instant, after reaping. */
export interface Snapshot {
  readonly records: readonly LocalRecord[];
  readonly now: number;
  readonly dir: DirectoryState;
}

/**
 * One full read of the registry. A missing directory is made again (an empty registry, as after a
 * restart), so watchers survive a wipe. Any reader removes instances that have been critical for
 * longer than their `deregisterCriticalAfterMs`: the registrant may be dead, and there is no
 * server to do it. Throws `RegistryUnavailableError` ("registry degraded") when live instances'
 * leases lapsed because the directory cannot be written, and holds the leases that lapsed meanwhile
 * until their owners can renew (write-probe.ts).
 */
export async function readSnapshot(
  dir: string,
  problems: FileProblems,
  now: () => number,
  cache: RecordCache,
  probe: WriteProbe,
  reuseListing = false,
): Promise<Snapshot> {
  const state = await openRegistryDirectory(dir, true);
  if (state === undefined) throw new Error('unreachable: directory not created');
  const outcomes = await cache.outcomes(dir, state, reuseListing);
  const at = now();
  const found: Array<{ name: string; ino: number }> = [];
  const raw: LocalRecord[] = [];
  const bad = new Set<string>();
  for (const [name, outcome] of outcomes) {
    if (outcome.kind === 'skip') {
      bad.add(name);
      problems.report(name, outcome.stamp, outcome.reason);
    } else if (outcome.kind === 'record') {
      found.push({ name, ino: outcome.ino });
      raw.push(outcome.record);
    }
  }
  // Before any reaping: a registry that cannot be written, or was not long ago, must not read as
  // dead instances.
  const reviewed = await probe.review(raw, at);
  const records: LocalRecord[] = [];
  for (const [i, record] of reviewed.entries()) {
    if (shouldReap(record, at)) {
      cache.forget(found[i]!.name);
      await removeRecordFile(dir, recordFileName(record.instance.id), found[i]!.ino).catch(() => {});
    } else {
      records.push(record);
    }
  }
  problems.retainOnly(bad);
  return { records, now: at, dir: state };
}

/** The healthy instances of `service` in a snapshot, sorted by id, filtered. */
export function healthyInstances(
  snapshot: Snapshot,
  service: string,
  filter: InstanceFilter | undefined,
  logger: RegistryLogger,
): ServiceInstance[] {
  const raws = snapshot.records
    .filter((r) => r.instance.service === service && isHealthy(r, snapshot.now))
    .map((r) => r.instance);
  // Already validated by parseRecord (bad files are reported once there); acceptInstances keeps
  // the one shared rule for filtering and ordering, and would catch anything that slipped by.
  return acceptInstances(raws, 'local', logger, filter);
}
