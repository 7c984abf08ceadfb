import { randomBytes } from 'node:crypto';
import { open, unlink } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { RegistryUnavailableError } from '../errors.js';
import { codeOf } from './directory.js';
import { httpLeaseMs, lapsedWhilePassing, type CheckState, type LocalRecord, type RecordOwner } from './record.js';

// About one record's worth: a full disk may still take an empty file.
const PROBE_BYTES = 4096;
// A failed probe is trusted this long before the directory is tried again.
const FAILED_PROBE_TTL_MS = 1_000;

/** Tries to write a file in `dir` and remove it: undefined when that worked, else the error code. */
export type TryWrite = (dir: string) => Promise<string | undefined>;

/**
 * Whether the record's owner process runs on this host. A record's lease lapsing normally means
 * its owner died or hung; on one host we can ask the kernel. `EPERM`: it exists, someone else's.
 * (A recycled pid reads as alive; that only matters while the directory cannot be written.)
 */
export function ownerAlive(owner: RecordOwner, thisHost: string = hostname()): boolean {
  if (owner.hostname !== thisHost) return false;
  try {
    process.kill(owner.pid, 0);
    return true;
  } catch (err) {
    return codeOf(err) === 'EPERM';
  }
}

/** A live owner's record this reader saw lapsed while the directory could not be written. */
interface Excuse {
  /** The version of the record that lapsed (its latest expiresAt): a renewal ends the excuse. */
  readonly lapse: number;
  /** Set when the directory is found writable again: until then the lease counts as running. */
  until: number | undefined;
}

/**
 * Tells "the instances are dead" from "the registry cannot be written". With the registry folder
 * on a full or read-only disk (ENOSPC, EROFS), every heartbeat fails, every lease lapses, and
 * readers used to drop every instance although every one was alive: an outage made by a full
 * /tmp. So when a reader finds lapsed records whose owners are alive on this host, it tries to
 * write the directory itself; if it cannot, the registry is degraded, and the snapshot fails with
 * a `RegistryUnavailableError` instead of answering "no instances": watchers keep their last good
 * list and callers report it stale, and nothing is reaped meanwhile.
 *
 * The fault also outlives the disk's repair: when the directory can be written again, the leases
 * that lapsed during the fault are still lapsed until each owner's next heartbeat lands, and a
 * reader that happens to look in between (sooner than any owner can renew, or while a loaded
 * machine delays the heartbeats) would drop those instances, and reap them once they had been
 * lapsed for `deregisterCriticalAfterMs`, which a long fault always exceeds. So every record seen
 * lapsed while the directory could not be written is excused: once the directory is writable
 * again, its lease counts as running for one more lease length from then (a TTL, or an HTTP
 * check's lease), the time its owner is always given to renew. An owner that renews ends the
 * excuse; one that does not is dropped when that runs out, and reaped as usual after it.
 *
 * Probes are rare: only for lapses newer than the last probe that succeeded (a lapse this reader
 * did not see during a fault, and that is older than a successful write, was not the disk's
 * doing), and a failure is reused for a second.
 */
export class WriteProbe {
  private okAt = Number.NEGATIVE_INFINITY;
  private failed: { at: number; code: string } | undefined;
  /** By instance id. Only records present in the last review: the map never outgrows the directory. */
  private readonly excused = new Map<string, Excuse>();

  constructor(
    private readonly dir: string,
    private readonly tryWrite: TryWrite = writeProbeFile,
    private readonly host: string = hostname(),
  ) {}

  /**
   * The records as readers must judge them at `now` (the registry's clock, the one leases are
   * on): excused leases extended (copies; the inputs are not changed). Throws when records
   * lapsed while their checks passed, owners alive, one of them after the last good probe, and
   * the directory cannot be written now.
   */
  async review(records: readonly LocalRecord[], now: number): Promise<LocalRecord[]> {
    this.prune(records);
    const held = records.map((r) => this.hold(r));
    const fresh: LocalRecord[] = [];
    held.forEach((r, i) => {
      // Excused and the fault not seen repaired yet: its lapse is older than the last good probe
      // when a fault returned during its hold, and it is still the fault's doing.
      const excuse = this.excused.get(r.instance.id);
      const faulted = excuse !== undefined && excuse.until === undefined;
      if (lapsedWhilePassing(r, now) && (faulted || lapsedAt(r) > this.okAt) && ownerAlive(r.owner, this.host)) {
        fresh.push(records[i]!);
      }
    });
    if (fresh.length === 0) return held;
    if (this.failed === undefined || now - this.failed.at >= FAILED_PROBE_TTL_MS) {
      const code = await this.tryWrite(this.dir);
      if (code === undefined) {
        this.failed = undefined;
        this.okAt = now;
        this.recovered(records, now);
        return records.map((r) => this.hold(r));
      }
      this.failed = { at: now, code };
    }
    // A hold that ran out during a new fault is excused again, from this fault's repair.
    for (const r of fresh) this.excused.set(r.instance.id, { lapse: lapsedAt(r), until: undefined });
    throw new RegistryUnavailableError(
      `registry degraded: ${this.dir} cannot be written (${this.failed.code}), so live instances cannot renew their registration; serving the last known instances`,
    );
  }

  /** Ends the excuses of records gone, rewritten (renewed, registered again) or whose owner died. */
  private prune(records: readonly LocalRecord[]): void {
    if (this.excused.size === 0) return;
    const byId = new Map(records.map((r) => [r.instance.id, r]));
    for (const [id, excuse] of this.excused) {
      const record = byId.get(id);
      if (record === undefined || lapsedAt(record) !== excuse.lapse || !ownerAlive(record.owner, this.host)) {
        this.excused.delete(id);
      }
    }
  }

  /** The directory is writable again: each excused owner gets one lease length from now to renew. */
  private recovered(records: readonly LocalRecord[], now: number): void {
    for (const record of records) {
      const excuse = this.excused.get(record.instance.id);
      if (excuse !== undefined && excuse.until === undefined) excuse.until = now + leaseMs(record);
    }
  }

  private hold(record: LocalRecord): LocalRecord {
    const until = this.excused.get(record.instance.id)?.until;
    if (until === undefined) return record;
    const extend = <C extends CheckState>(c: C | undefined): C | undefined =>
      c && c.expiresAt !== null && c.expiresAt < until ? { ...c, expiresAt: until } : c;
    const checks: LocalRecord['checks'] = {};
    const ttl = extend(record.checks.ttl);
    const http = extend(record.checks.http);
    if (ttl) checks.ttl = ttl;
    if (http) checks.http = http;
    return { ...record, checks };
  }
}

async function writeProbeFile(dir: string): Promise<string | undefined> {
  const path = join(dir, `.probe.${randomBytes(6).toString('hex')}.tmp`);
  let created = false;
  try {
    const handle = await open(path, 'wx', 0o600);
    created = true;
    try {
      await handle.writeFile(Buffer.alloc(PROBE_BYTES, 0x20));
    } finally {
      await handle.close();
    }
    return undefined;
  } catch (err) {
    return codeOf(err);
  } finally {
    if (created) await unlink(path).catch(() => {});
  }
}

/** When the record's last lapsed check ran out (its checks were passing until then). */
function lapsedAt(record: LocalRecord): number {
  let at = Number.NEGATIVE_INFINITY;
  for (const check of [record.checks.ttl, record.checks.http]) {
    if (check?.expiresAt != null && check.expiresAt > at) at = check.expiresAt;
  }
  return at;
}

/** How long the owner of `record` may go between writes without its lease lapsing. */
function leaseMs(record: LocalRecord): number {
  let ms = 0;
  if (record.checks.ttl) ms = Math.max(ms, record.checks.ttl.ttlMs);
  const http = record.checks.http;
  if (http) ms = Math.max(ms, httpLeaseMs(http.intervalMs, http.timeoutMs));
  return ms;
}
