import { chmod, chown, mkdir, mkdtemp, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient, undiciPoolFactory, type Client, type TransportFactory } from '@peerlb/client';
import { LocalRegistry, PeerlbError, UnsafeRegistryDirectoryError, type RegistryLogger, type WatchUpdate } from '@peerlb/registry';
import { plantRecord } from './support/local-records.js';
import { waitFor } from './support/processes.js';
import { startPeer, startTrap, type Peer, type Trap } from './support/servers.js';

// The local registry is a directory every process of one user shares. Nobody else may put an
// instance there (a world-writable or symlinked directory is refused, a file owned by someone else
// is skipped), and an entry that names a scheme, port or address we cannot trust is never dialled.

const NOBODY = 65_534;

class Warnings implements RegistryLogger {
  readonly lines: string[] = [];
  warn(message: string): void {
    this.lines.push(message);
  }
}

describe('local registry: who may add an instance', () => {
  let root: string;
  let trap: Trap;
  let peer: Peer;
  const registries: LocalRegistry[] = [];
  const clients: Client[] = [];

  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'peerlb-security-local-'));
    trap = await startTrap();
    peer = await startPeer();
  });
  afterAll(async () => {
    await Promise.all(clients.map((c) => c.close()));
    await Promise.all(registries.map((r) => r.close()));
    await trap?.close();
    await peer?.close();
    await rm(root, { recursive: true, force: true });
  });

  function open(dir: string, logger: RegistryLogger = new Warnings()): LocalRegistry {
    const r = new LocalRegistry({ dir, rescanIntervalMs: 100, logger });
    registries.push(r);
    return r;
  }

  async function expectRefused(dir: string, reason: RegExp): Promise<void> {
    const r = open(dir);
    const attempts = [
      r.list('orders'),
      r.register({ id: 'orders-1', service: 'orders', address: '127.0.0.1', port: trap.port }, { ttlMs: 10_000 }),
      r.heartbeat('orders-1'),
    ];
    for (const attempt of attempts) {
      const err = await attempt.catch((e: unknown) => e);
      expect(err).toBeInstanceOf(UnsafeRegistryDirectoryError);
      expect((err as PeerlbError).code).toBe('PEERLB_UNSAFE_REGISTRY_DIR');
      expect(String((err as Error).message)).toMatch(reason);
    }
    const updates: WatchUpdate[] = [];
    const watch = r.watch('orders', (u) => updates.push(u));
    await waitFor(() => updates.length > 0, 5_000, 'the watch to report');
    watch.close();
    expect(updates.every((u) => !u.ok)).toBe(true);
  }

  it('refuses a world-writable directory, and a group-writable one', async () => {
    for (const mode of [0o777, 0o1777, 0o770, 0o702]) {
      const dir = join(root, `writable-${mode.toString(8)}`);
      await mkdir(dir);
      await chmod(dir, mode);
      await plantRecord(dir, { id: 'orders-planted', service: 'orders', address: '127.0.0.1', port: trap.port });
      await expectRefused(dir, /writable by group or others/);
    }
    expect(trap.connections).toBe(0);
  });

  it('refuses a directory reached through a symbolic link', async () => {
    const real = join(root, 'real');
    await mkdir(real, { mode: 0o700 });
    await plantRecord(real, { id: 'orders-planted', service: 'orders', address: '127.0.0.1', port: trap.port });
    const link = join(root, 'link');
    await symlink(real, link);
    await expectRefused(link, /symbolic link/);
  });

  it('refuses a directory owned by another user', async () => {
    const dir = join(root, 'foreign-dir');
    await mkdir(dir, { mode: 0o700 });
    // Tests run as root here, which may give a directory away; a plain user cannot (EPERM), and
    // then nobody but root could have planted one either.
    const given = await chown(dir, NOBODY, NOBODY).then(() => true, (e: NodeJS.ErrnoException) => (e.code === 'EPERM' ? false : Promise.reject(e)));
    if (given) await expectRefused(dir, /owned by uid 65534/);
    else expect(process.getuid?.()).not.toBe(0);
  });

  it('skips files owned by another user, writable by others, or symlinked, and never dials them', async () => {
    const dir = join(root, 'shared');
    await mkdir(dir, { mode: 0o700 });
    const logger = new Warnings();
    const r = open(dir, logger);
    await r.register({ id: 'orders-real', service: 'orders', address: '127.0.0.1', port: peer.port }, { ttlMs: 600_000 });
    await r.heartbeat('orders-real');

    const foreign = await plantRecord(dir, { id: 'orders-foreign', service: 'orders', address: '127.0.0.1', port: trap.port });
    const ownedByNobody = await chown(foreign, NOBODY, NOBODY).then(() => true, () => false);
    await plantRecord(dir, { id: 'orders-world', service: 'orders', address: '127.0.0.1', port: trap.port }, { mode: 0o666 });
    await chmod(join(dir, 'orders-world.json'), 0o666);
    await plantRecord(dir, { id: 'orders-group', service: 'orders', address: '127.0.0.1', port: trap.port });
    await chmod(join(dir, 'orders-group.json'), 0o620);
    const elsewhere = join(root, 'elsewhere.json');
    await plantRecord(root, { id: 'orders-linked', service: 'orders', address: '127.0.0.1', port: trap.port }, { name: 'elsewhere.json' });
    await symlink(elsewhere, join(dir, 'orders-linked.json'));

    expect((await r.list('orders')).map((i) => i.id)).toEqual(['orders-real']);
    if (ownedByNobody) expect(logger.lines.join('\n')).toMatch(/orders-foreign\.json.*owned by uid 65534/);
    expect(logger.lines.join('\n')).toMatch(/orders-world\.json.*writable by group or others/);
    expect(logger.lines.join('\n')).toMatch(/orders-group\.json.*writable by group or others/);
    expect(logger.lines.join('\n')).toMatch(/orders-linked\.json.*symbolic link/);

    const dialled: string[] = [];
    const recording: TransportFactory = (origin, options) => {
      dialled.push(origin);
      return undiciPoolFactory(origin, options);
    };
    const client = createClient({ registry: open(dir), transportFactory: recording });
    clients.push(client);
    for (let i = 0; i < 30; i++) {
      const res = await client.request({ service: 'orders', path: '/' });
      expect(res.statusCode).toBe(200);
      await res.body.dump();
    }
    expect(dialled).toEqual([`http://127.0.0.1:${peer.port}`]);
    expect(trap.connections).toBe(0);
  });
});

describe('entries that are never dialled', () => {
  let dir: string;
  let trap: Trap;
  let peer: Peer;
  let client: Client;
  const dialled: string[] = [];
  const logger = new Warnings();

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'peerlb-never-dialled-'));
    trap = await startTrap();
    peer = await startPeer();
    await plantRecord(dir, { id: 'svc-good', service: 'svc', address: '127.0.0.1', port: peer.port });
    const port = trap.port;
    const bad: Array<Record<string, unknown>> = [
      { id: 'svc-ftp', meta: { scheme: 'ftp' } },
      { id: 'svc-file', meta: { scheme: 'file' } },
      { id: 'svc-js', meta: { scheme: 'javascript' } },
      { id: 'svc-upper', meta: { scheme: 'HTTPS' } },
      { id: 'svc-empty-scheme', meta: { scheme: '' } },
      { id: 'svc-port-0', port: 0 },
      { id: 'svc-port-high', port: 65_536 },
      { id: 'svc-port-huge', port: 1e21 },
      { id: 'svc-port-neg', port: -1 },
      { id: 'svc-port-frac', port: 80.5 },
      { id: 'svc-port-str', port: String(port) },
      { id: 'svc-port-nan', port: null },
      { id: 'svc-addr-url', address: `http://127.0.0.1:${port}` },
      { id: 'svc-addr-port', address: `127.0.0.1:${port}` },
      { id: 'svc-addr-user', address: `user@127.0.0.1` },
      { id: 'svc-addr-quad', address: '256.0.0.1' },
      { id: 'svc-addr-crlf', address: '127.0.0.1\r\nx: y' },
      { id: 'svc-addr-nul', address: '127.0.0.1\u0000' },
      { id: 'svc-addr-empty', address: '' },
      { id: 'svc-addr-long', address: `${'a'.repeat(64)}.example` },
    ];
    for (const fields of bad) {
      await plantRecord(dir, { service: 'svc', address: '127.0.0.1', port, ...fields });
    }
    const recording: TransportFactory = (origin, options) => {
      dialled.push(origin);
      return undiciPoolFactory(origin, options);
    };
    client = createClient({ registry: new LocalRegistry({ dir, logger }), closeRegistry: true, transportFactory: recording });
  });
  afterAll(async () => {
    await client?.close();
    await trap?.close();
    await peer?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('a scheme other than http/https, a port outside 1..65535 or a malformed address', async () => {
    for (let i = 0; i < 40; i++) {
      const res = await client.request({ service: 'svc', path: '/' });
      expect(res.statusCode).toBe(200);
      expect(res.peer.id).toBe('svc-good');
      await res.body.dump();
    }
    expect(client.stats().services.svc!.peers.map((p) => p.id)).toEqual(['svc-good']);
    expect(dialled).toEqual([`http://127.0.0.1:${peer.port}`]);
    expect(trap.connections).toBe(0);
    // Each one was reported, by file name.
    for (const id of ['svc-ftp', 'svc-port-0', 'svc-addr-url', 'svc-addr-crlf']) {
      expect(logger.lines.some((l) => l.includes(`${id}.json`))).toBe(true);
    }
  });
});
