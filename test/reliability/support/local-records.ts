import { writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';

/**
 * A local-registry record (format version 1) as a planted file would hold it: a passing TTL check
 * good for 10 minutes. `instance` is written as given, valid or not.
 */
export function recordOf(instance: Record<string, unknown>, now = Date.now()): Record<string, unknown> {
  return {
    peerlb: 1,
    instance: { tags: [], meta: {}, ...instance },
    owner: { pid: process.pid, hostname: hostname(), registry: 'planted' },
    checks: { ttl: { status: 'passing', output: '', since: now, expiresAt: now + 600_000, ttlMs: 600_000 } },
    registeredAt: now,
  };
}

/** The file name the local registry expects for an instance id. */
export function recordFileName(id: string): string {
  return `${encodeURIComponent(id)}.json`;
}

/** Writes a record for `instance` into `dir` under the name its id maps to (or `name`). */
export async function plantRecord(
  dir: string,
  instance: Record<string, unknown>,
  options: { name?: string; mode?: number } = {},
): Promise<string> {
  const path = join(dir, options.name ?? recordFileName(String(instance.id)));
  await writeFile(path, `${JSON.stringify(recordOf(instance))}\n`, { mode: options.mode ?? 0o600 });
  return path;
}
