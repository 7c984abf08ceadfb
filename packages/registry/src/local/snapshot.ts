import type { InstanceFilter, RegistryLogger, ServiceInstance } from '../types.js';
import { acceptInstances } from '../validate.js';
import { openRegistryDirectory, type DirectoryState } from './directory.js';
import type { FileProblems } from './file-problems.js';
import { listRecordFiles, readRecordFile, removeRecordFile, type ReadOutcome } from './record-files.js';
import { isHealthy, recordFileName, shouldReap, type LocalRecord } from './record.js';

/** Every valid record in the directory at one instant, after reaping. */
export interface Snapshot {
  readonly records: readonly LocalRecord[];
  readonly now: number;
  readonly dir: DirectoryState;
}

// Bounds open file descriptors while reading a large directory.
const READ_BATCH = 32;

/**
 * One full read of the registry. A missing directory is made again (an empty registry, as after a
 * restart), so watchers survive a wipe. Any reader removes instances that have been critical for
 * longer than their `deregisterCriticalAfterMs`: the registrant may be dead, and there is no
 * server to do it.
 */
export async function readSnapshot(dir: string, problems: FileProblems, now: () => number): Promise<Snapshot> {
  const state = await openRegistryDirectory(dir, true);
  if (state === undefined) throw new Error('unreachable: directory not created');
  const names = await listRecordFiles(dir);
  const outcomes: Array<[string, ReadOutcome]> = [];
  for (let i = 0; i < names.length; i += READ_BATCH) {
    const batch = names.slice(i, i + READ_BATCH);
    const read = await Promise.all(batch.map((name) => readRecordFile(dir, name)));
    read.forEach((outcome, j) => outcomes.push([batch[j]!, outcome]));
  }
  const at = now();
  const records: LocalRecord[] = [];
  const bad = new Set<string>();
  for (const [name, outcome] of outcomes) {
    if (outcome.kind === 'skip') {
      bad.add(name);
      problems.report(name, outcome.stamp, outcome.reason);
    } else if (outcome.kind === 'record') {
      if (shouldReap(outcome.record, at)) {
        await removeRecordFile(dir, recordFileName(outcome.record.instance.id), outcome.ino).catch(() => {});
      } else {
        records.push(outcome.record);
      }
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
