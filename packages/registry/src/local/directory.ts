import { lstat, mkdir } from 'node:fs/promises';
import type { Stats } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { join, resolve } from 'node:path';
import { RegistryUnavailableError, UnsafeRegistryDirectoryError } from '../errors.js';

/** `PEERLB_REGISTRY_DIR`, else one folder per user under the OS temp dir. */
export function defaultRegistryDir(env: NodeJS.ProcessEnv): string {
  const fromEnv = env.PEERLB_REGISTRY_DIR;
  if (fromEnv !== undefined && fromEnv !== '') return resolve(fromEnv);
  return join(tmpdir(), `peerlb-registry-${userTag()}`);
}

function userTag(): string {
  const uid = process.getuid?.();
  if (uid !== undefined) return String(uid);
  try {
    return userInfo().username.replace(/[^A-Za-z0-9_-]/g, '_') || 'user';
  } catch {
    return 'user';
  }
}

export interface DirectoryState {
  /**
   * Identity of this incarnation of the directory. The inode number alone is not enough: a
   * directory removed and made again often gets the same one back, and a watch on the old one
   * then sees nothing.
   */
  readonly id: string;
  /** We made the directory just now (it was missing, e.g. wiped as a "registry restart"). */
  readonly created: boolean;
  /**
   * Changes whenever an entry is added, removed or renamed (every record write is a rename), so
   * an unchanged stamp lets a rescan skip the listing (see record-cache.ts).
   */
  readonly stamp: string;
  /** The directory's mtime, and when (wall clock, as file times are) it was read. */
  readonly mtimeMs: number;
  readonly statAt: number;
}

/**
 * Makes sure the registry directory can be trusted before anything is read from or written to it:
 * a symlink could point our writes anywhere, and a directory other users can write to would let
 * them plant instances that we would then send traffic to. Returns undefined when the directory
 * is missing and `create` is false.
 */
export async function openRegistryDirectory(dir: string, create: boolean): Promise<DirectoryState | undefined> {
  let created = false;
  const statAt = Date.now();
  let stats = await lstatOrUndefined(dir);
  if (stats === undefined) {
    if (!create) return undefined;
    try {
      await mkdir(dir, { recursive: true, mode: 0o700 });
    } catch (cause) {
      throw new RegistryUnavailableError(`cannot create registry directory ${dir}: ${codeOf(cause)}`, { cause });
    }
    created = true;
    stats = await lstatOrUndefined(dir);
    if (stats === undefined) throw new RegistryUnavailableError(`registry directory ${dir} vanished while being created`);
  }
  assertSafeDirectory(dir, stats);
  return {
    id: `${stats.dev}:${stats.ino}:${stats.birthtimeMs}`,
    created,
    stamp: `${stats.mtimeMs}:${stats.ctimeMs}`,
    mtimeMs: stats.mtimeMs,
    statAt,
  };
}

export function assertSafeDirectory(dir: string, stats: Stats): void {
  if (stats.isSymbolicLink()) throw new UnsafeRegistryDirectoryError(dir, 'it is a symbolic link');
  if (!stats.isDirectory()) throw new UnsafeRegistryDirectoryError(dir, 'it is not a directory');
  const uid = process.getuid?.();
  if (uid !== undefined && stats.uid !== uid) {
    throw new UnsafeRegistryDirectoryError(dir, `it is owned by uid ${stats.uid}, not by this user (uid ${uid})`);
  }
  if (POSIX_MODES && (stats.mode & 0o022) !== 0) {
    throw new UnsafeRegistryDirectoryError(
      dir,
      `it is writable by group or others (mode ${(stats.mode & 0o777).toString(8).padStart(4, '0')}); chmod 700 it`,
    );
  }
}

async function lstatOrUndefined(path: string): Promise<Stats | undefined> {
  try {
    return await lstat(path);
  } catch (cause) {
    if (codeOf(cause) === 'ENOENT') return undefined;
    throw new RegistryUnavailableError(`cannot access registry directory ${path}: ${codeOf(cause)}`, { cause });
  }
}

/** Windows reports made-up mode bits (0o666 for every writable file): only POSIX ones mean anything. */
export const POSIX_MODES = process.platform !== 'win32';

export function codeOf(err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : String((err as Error)?.message ?? err);
}
