import { randomBytes } from 'node:crypto';
import { open, unlink } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { RegistryUnavailableError } from '../errors.js';
import { codeOf } from './directory.js';
import type { LocalRecord, RecordOwner } from './record.js';

// About one record's worth: a full disk may still take an empty file.
const PROBE_BYTES = 4096;
// A failed probe is trusted this long before the directory is tried again.
const FAILED_PROBE_TTL_MS = 1_000;

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

/**
 * Tells "the instances are dead" from "the registry cannot be written". With the registry folder
 * on a full or read-only disk (ENOSPC, EROFS), every heartbeat fails, every lease lapses, and
 * readers used to drop every instance although every one was alive: an outage made by a full
 * /tmp. So when a reader finds lapsed records whose owners are alive on this host, it tries to
 * write the directory itself; if it cannot, the registry is degraded, and the snapshot fails with
 * a `RegistryUnavailableError` instead of answering "no instances": watchers keep their last good
 * list and callers report it stale, and nothing is reaped meanwhile.
 *
 * Probes are rare: only for lapses newer than the last probe that succeeded (a lapse before a
 * successful write was not caused by the disk), and a failure is reused for a second.
 */
export class WriteProbe {
  private okAt = Number.NEGATIVE_INFINITY;
  private failed: { at: number; code: string } | undefined;

  constructor(private readonly dir: string) {}

  /**
   * Throws when `lapsed` (records whose checks passed until their lease ran out, owner alive)
   * hold one that lapsed after the last good probe and the directory cannot be written now.
   * `now` is the registry's clock, the one leases are on.
   */
  async assertWritable(lapsed: readonly LocalRecord[], now: number): Promise<void> {
    if (lapsed.length === 0) return;
    const newest = Math.max(...lapsed.map(lapsedAt));
    if (newest <= this.okAt) return;
    if (this.failed === undefined || now - this.failed.at >= FAILED_PROBE_TTL_MS) {
      const code = await this.probe();
      if (code === undefined) {
        this.failed = undefined;
        this.okAt = now;
        return;
      }
      this.failed = { at: now, code };
    }
    throw new RegistryUnavailableError(
      `registry degraded: ${this.dir} cannot be written (${this.failed.code}), so live instances cannot renew their registration; serving the last known instances`,
    );
  }

  private async probe(): Promise<string | undefined> {
    const path = join(this.dir, `.probe.${randomBytes(6).toString('hex')}.tmp`);
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
}

/** When the record's last lapsed check ran out (its checks were passing until then). */
function lapsedAt(record: LocalRecord): number {
  let at = Number.NEGATIVE_INFINITY;
  for (const check of [record.checks.ttl, record.checks.http]) {
    if (check?.expiresAt != null && check.expiresAt > at) at = check.expiresAt;
  }
  return at;
}
