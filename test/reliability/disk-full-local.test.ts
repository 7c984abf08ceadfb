import { execFileSync } from 'node:child_process';
import { chmod, mkdir, open, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { openBackend, type Backend } from './support/backends.js';
import { MODE, reportFigures } from './support/mode.js';
import { startOutageInstances, startOutageLoad } from './support/outage.js';
import { killAll, sleep, waitFor } from './support/processes.js';

// Issue 12 item 1: the local registry's folder on a full, then a read-only, disk. Done for real:
// the folder is a 64 KiB tmpfs (`mount -t tmpfs -o size=64k`), filled up with a plain file until
// the kernel answers ENOSPC, later remounted read-only (EROFS). That needs root (CI runs as root).
// Where mounting is refused, the same fault is made at the file-system layer another way, and the
// test says which: a non-root user gets a directory without write permission (writes fail with
// EACCES, the registry code's writes fail the same way a full disk's do); root without mount
// rights gets an immutable directory (`chattr +i`: EPERM).

interface DiskFault {
  readonly how: string;
  /** Writes stop working (ENOSPC, or the fallback's error). */
  fill(): Promise<void>;
  free(): Promise<void>;
  /** Writes stop working (EROFS, or the fallback's error). */
  readOnly(): Promise<void>;
  writable(): Promise<void>;
  release(): Promise<void>;
}

function run(cmd: string, args: string[]): boolean {
  try {
    execFileSync(cmd, args, { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

async function diskFault(dir: string): Promise<DiskFault> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  if (run('mount', ['-t', 'tmpfs', '-o', 'size=64k,mode=0700', 'tmpfs', dir])) {
    const filler = join(dir, 'filler.bin');
    let topUp: NodeJS.Timeout | undefined;
    // Fills what is left; run again now and then, as a record removed meanwhile frees a page.
    const fillUp = async (): Promise<void> => {
      const handle = await open(filler, 'a', 0o600);
      try {
        for (;;) await handle.write(Buffer.alloc(4096, 0x2e));
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
      } finally {
        await handle.close();
      }
    };
    return {
      how: 'tmpfs of 64 KiB: filled (ENOSPC), then remounted read-only (EROFS)',
      async fill() {
        await fillUp();
        topUp = setInterval(() => void fillUp().catch(() => {}), 100);
      },
      async free() {
        clearInterval(topUp);
        await rm(filler, { force: true });
      },
      async readOnly() {
        // The kernel refuses it (EBUSY) while a file on it is open for writing: an instance's
        // heartbeat or a reader's write probe in flight, held open longer on a loaded machine.
        const deadline = Date.now() + 10_000;
        while (!run('mount', ['-o', 'remount,ro', dir])) {
          if (Date.now() > deadline) throw new Error('remount,ro failed for 10 s');
          await sleep(20);
        }
      },
      async writable() {
        if (!run('mount', ['-o', 'remount,rw', dir])) throw new Error('remount,rw failed');
      },
      async release() {
        clearInterval(topUp);
        run('umount', ['-l', dir]);
      },
    };
  }
  if (process.getuid?.() !== 0) {
    const deny = () => chmod(dir, 0o500);
    const allow = () => chmod(dir, 0o700);
    return { how: 'no mount rights: directory without write permission (EACCES)', fill: deny, free: allow, readOnly: deny, writable: allow, release: allow };
  }
  const immutable = async () => {
    if (!run('chattr', ['+i', dir])) throw new Error('cannot make a disk fault here: mount and chattr +i both refused');
  };
  const mutable = async () => void run('chattr', ['-i', dir]);
  return { how: 'root without mount rights: immutable directory (chattr +i, EPERM)', fill: immutable, free: mutable, readOnly: immutable, writable: mutable, release: mutable };
}

describe('local registry on a full or read-only disk (issue 12)', () => {
  let backend: Backend | undefined;
  let fault: DiskFault | undefined;
  afterAll(async () => {
    await killAll();
    await fault?.release();
    await backend?.close();
  });

  it(
    'a registry that cannot be written reads as degraded (stale), never as no instances; instances say they cannot renew',
    async () => {
      backend = await openBackend('local');
      const dir = (backend.ref as { dir: string }).dir;
      fault = await diskFault(dir);
      const service = 'disk-full';
      // Reaped after 2 s critical: a reader that took lapsed leases for dead instances would delete them.
      const instances = await startOutageInstances(backend, service, 2_000);
      const load = await startOutageLoad(backend, service);
      const stats = () => load.stats();
      await waitFor(async () => (await stats())?.eligiblePeers === 3, 10_000, 'the client to see the three instances');

      const phase = async (name: string, breakIt: () => Promise<void>, mendIt: () => Promise<void>) => {
        const brokenAt = Date.now();
        await breakIt();
        await waitFor(async () => (await stats())?.stale === true, 15_000, `the client to report its cache stale (${name})`);
        // Well past every TTL (1 s) and the reap delay (2 s).
        await sleep(Math.max(0, MODE.outageMs - (Date.now() - brokenAt)));
        const during = await stats();
        await mendIt();
        await waitFor(async () => (await stats())?.stale === false, 15_000, `the client to leave the stale state (${name})`);
        // An empty answer is held for a grace period with the old list still counted: wait past it.
        await waitFor(
          async () => {
            const now = await stats();
            return now?.eligiblePeers === 3 && now.emptyPending === false;
          },
          15_000,
          `the three instances to be back (${name})`,
        );
        return { during, faultMs: Date.now() - brokenAt };
      };
      const full = await phase('full', () => fault!.fill(), () => fault!.free());
      const readOnly = await phase('read-only', () => fault!.readOnly(), () => fault!.writable());
      await sleep(500);
      load.stop();
      const report = await load.done;

      reportFigures('disk-full/local', {
        fault: fault.how,
        requests: report.sent,
        failed: report.get.failed + report.post.failed,
        staleEvents: report.staleEvents,
        fullMs: full.faultMs,
        readOnlyMs: readOnly.faultMs,
      });
      const context = JSON.stringify({ how: fault.how, get: report.get, post: report.post, full, readOnly, warnings: report.warnings });
      expect(report.get.ok, context).toBeGreaterThan(50);
      expect(report.get.failures, context).toEqual([]);
      expect(report.post.failures, context).toEqual([]);
      for (const { during } of [full, readOnly]) {
        expect(during?.stale, context).toBe(true);
        expect(during?.eligiblePeers, context).toBe(3);
        expect(during?.lastError, context).toMatch(/registry degraded/);
      }
      // Not even for a moment after a repair, before the owners renewed: the client never heard
      // "no instances", and no record was reaped (an instance whose record is removed learns it on
      // its next heartbeat, 'lost', and registers again).
      expect(report.warnings.filter((w) => /no instances/.test(w)), context).toEqual([]);
      // Every instance said, in its own log, that it could not renew, and that it did again.
      for (const instance of instances) {
        expect(instance.events, instance.output).not.toContain('lost');
        expect(instance.output, instance.output).toMatch(/CANNOT RENEW its registration/);
        expect(instance.output, instance.output).toMatch(/renews its registration again/);
        expect(instance.running).toBe(true);
      }
    },
    MODE.testTimeoutMs(2 * MODE.outageMs + 60_000),
  );
});
