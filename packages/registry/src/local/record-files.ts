import { constants, type Stats } from 'node:fs';
import { lstat, open, readdir, rename, unlink, type FileHandle } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { RegistryUnavailableError } from '../errors.js';
import { POSIX_MODES, codeOf } from './directory.js';
import { MAX_RECORD_BYTES, isRecordFileName, parseRecord, recordFileName, serializeRecord, type LocalRecord } from './record.js';

// O_NOFOLLOW: a planted symlink is refused by the kernel, with no check-then-open race.
// O_NONBLOCK: opening a FIFO someone named `x.json` must not hang a thread-pool thread.
const READ_FLAGS = constants.O_RDONLY | (constants.O_NOFOLLOW ?? 0) | (constants.O_NONBLOCK ?? 0);
// A writer that died between creating its temp file and renaming it leaves the file behind.
const STALE_TEMP_MS = 60_000;

/** `stamp`: the version of the file read (inode, size, mtime, ctime): a rescan re-reads a file only when it changed. */
export type ReadOutcome =
  | { kind: 'record'; record: LocalRecord; ino: number; stamp: string }
  | { kind: 'skip'; reason: string; stamp: string }
  | { kind: 'gone' };

/** Every record write is a rename (a new inode); an edit in place changes size, mtime or ctime. */
export function statStamp(stats: Stats): string {
  return `${stats.ino}:${stats.size}:${stats.mtimeMs}:${stats.ctimeMs}`;
}

/**
 * Reads one record file defensively. Anything that is not a regular file of ours, holding a valid
 * record named after its own id, comes back as `skip` with a reason and a `stamp` (so the caller
 * warns once per version of the file, not once per rescan).
 */
export async function readRecordFile(dir: string, name: string): Promise<ReadOutcome> {
  const path = join(dir, name);
  let handle;
  try {
    handle = await open(path, READ_FLAGS);
  } catch (err) {
    const code = codeOf(err);
    if (code === 'ENOENT') return { kind: 'gone' };
    const stats = await lstat(path).catch(() => undefined);
    if (stats === undefined) return { kind: 'gone' };
    const stamp = statStamp(stats);
    if (stats.isSymbolicLink()) return { kind: 'skip', reason: 'a symbolic link', stamp };
    return { kind: 'skip', reason: `cannot be opened (${code})`, stamp };
  }
  try {
    const stats = await handle.stat();
    const stamp = statStamp(stats);
    const skip = (reason: string): ReadOutcome => ({ kind: 'skip', reason, stamp });
    if (!stats.isFile()) return skip('not a regular file');
    const uid = process.getuid?.();
    // The directory is ours and 0700, so such a file means someone with more rights than another
    // local user put it there, or the checks on the directory were bypassed: trust it no further.
    if (uid !== undefined && stats.uid !== uid) return skip(`owned by uid ${stats.uid}, not by this user`);
    if (POSIX_MODES && (stats.mode & 0o022) !== 0) return skip('writable by group or others');
    if (stats.size > MAX_RECORD_BYTES) return skip(`larger than ${MAX_RECORD_BYTES} bytes`);
    const text = await readAtMost(handle, MAX_RECORD_BYTES);
    if (text === undefined) return skip(`larger than ${MAX_RECORD_BYTES} bytes`);
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      return skip('not valid JSON');
    }
    const parsed = parseRecord(json, name);
    if (!parsed.ok) return skip(parsed.reason);
    return { kind: 'record', record: parsed.record, ino: stats.ino, stamp };
  } catch (err) {
    if (codeOf(err) === 'ENOENT') return { kind: 'gone' };
    return { kind: 'skip', reason: `cannot be read (${codeOf(err)})`, stamp: 'unreadable' };
  } finally {
    await handle.close().catch(() => {});
  }
}

/** The file's text, or undefined when it holds more than `max` bytes (it may have grown since fstat). */
async function readAtMost(handle: FileHandle, max: number): Promise<string | undefined> {
  const buffer = Buffer.allocUnsafe(max + 1);
  let length = 0;
  for (;;) {
    const { bytesRead } = await handle.read(buffer, length, buffer.length - length, null);
    if (bytesRead === 0) break;
    length += bytesRead;
    if (length > max) return undefined;
  }
  return buffer.toString('utf8', 0, length);
}

/** The record file names in `dir`, after removing temp files abandoned by dead writers. */
export async function listRecordFiles(dir: string): Promise<string[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (cause) {
    const code = codeOf(cause);
    if (code === 'ENOENT') return [];
    throw new RegistryUnavailableError(`cannot read registry directory ${dir}: ${code}`, { cause });
  }
  const temps = names.filter((n) => n.startsWith('.') && n.endsWith('.tmp'));
  if (temps.length > 0) await removeStaleTemps(dir, temps);
  return names.filter(isRecordFileName);
}

async function removeStaleTemps(dir: string, names: string[]): Promise<void> {
  const uid = process.getuid?.();
  for (const name of names) {
    const path = join(dir, name);
    const stats = await lstat(path).catch(() => undefined);
    if (!stats?.isFile() || (uid !== undefined && stats.uid !== uid)) continue;
    // File times are wall-clock, so this compares against Date.now, not an injected clock.
    if (Date.now() - stats.mtimeMs > STALE_TEMP_MS) await unlink(path).catch(() => {});
  }
}

/**
 * Writes `record` so that a reader sees either the old file or the new one, never part of one:
 * write a private temp file in the same directory, then rename it over the record. `wx` refuses
 * to follow anything planted at the temp name. No fsync: the registry describes live processes,
 * and a host crash ends those anyway.
 */
export async function writeRecordFile(dir: string, record: LocalRecord): Promise<void> {
  const body = serializeRecord(record);
  const name = recordFileName(record.instance.id);
  const temp = join(dir, `.${name}.${randomBytes(6).toString('hex')}.tmp`);
  const handle = await open(temp, 'wx', 0o600);
  try {
    await handle.writeFile(body, { encoding: 'utf8' });
  } catch (err) {
    await handle.close().catch(() => {});
    await unlink(temp).catch(() => {});
    throw err;
  }
  await handle.close();
  try {
    await rename(temp, join(dir, name));
  } catch (err) {
    await unlink(temp).catch(() => {});
    throw err;
  }
}

/**
 * Removes a record file, but only if it is still the version that was read (`ino`): a rename by
 * its owner in between means fresh content that must not be thrown away.
 */
export async function removeRecordFile(dir: string, name: string, ino?: number): Promise<void> {
  const path = join(dir, name);
  if (ino !== undefined) {
    const stats = await lstat(path).catch(() => undefined);
    if (stats === undefined || stats.ino !== ino) return;
  }
  try {
    await unlink(path);
  } catch (err) {
    if (codeOf(err) !== 'ENOENT') throw err;
  }
}
