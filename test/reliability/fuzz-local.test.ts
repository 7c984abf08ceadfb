import { execFileSync } from 'node:child_process';
import { chmod, mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient } from '@peerlb/client';
import { LocalRegistry, parseInstance, silentLogger, type ServiceInstance, type WatchUpdate } from '@peerlb/registry';
import { describeError, dialRecorder, isTypedError, trackUnhandled } from './support/fuzz.js';
import { recordFileName, recordOf } from './support/local-records.js';
import { MODE } from './support/mode.js';
import { sleep } from './support/processes.js';
import { startPeer, type Peer } from './support/servers.js';

// Whatever lies in the local registry's directory -- records broken in any field, not JSON, not
// records, the wrong name, symlinks, directories, FIFOs, files others may write -- readers never
// crash, hand on only valid instances, never dial an invalid one, and fail only with typed errors.

const unhandled = trackUnhandled();
const SERVICE = 'fuzz';
let root: string;
let peer: Peer;
let serial = 0;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'peerlb-fuzz-local-'));
  peer = await startPeer();
});
afterAll(async () => {
  await peer?.close();
  await rm(root, { recursive: true, force: true });
});

/** Sets `value` at a dotted `path` of `target` (creating objects on the way), or deletes it. */
function setPath(target: Record<string, unknown>, path: string, value: unknown, drop: boolean): void {
  const keys = path.split('.');
  let node: Record<string, unknown> = target;
  for (const key of keys.slice(0, -1)) {
    if (node[key] === null || typeof node[key] !== 'object') node[key] = {};
    node = node[key] as Record<string, unknown>;
  }
  const last = keys.at(-1)!;
  if (drop) delete node[last];
  else node[last] = value;
}

const PATHS = [
  'peerlb', 'instance', 'instance.id', 'instance.service', 'instance.address', 'instance.port', 'instance.tags',
  'instance.meta', 'instance.meta.scheme', 'owner', 'owner.pid', 'checks', 'checks.ttl', 'checks.ttl.status',
  'checks.ttl.expiresAt', 'checks.ttl.ttlMs', 'checks.ttl.since', 'checks.http', 'deregisterCriticalAfterMs', 'registeredAt',
];
const junkValue = fc.oneof(
  fc.anything(),
  fc.constantFrom(0, -1, 65_536, 1.5, '', 'ftp', 'HTTPS', 'critical', 'warning', null, Number.NaN, 1e308, '127.0.0.1:80', 'a\nb'),
);

interface PlannedFile {
  name: string;
  kind: 'file' | 'symlink' | 'directory' | 'fifo' | 'big';
  content: string;
  mode: number;
}

const validInstance = fc.record({
  id: fc.stringMatching(/^[a-z][a-z0-9-]{0,12}$/),
  service: fc.constantFrom(SERVICE, 'other'),
  address: fc.constant('127.0.0.1'),
  port: fc.constant(0), // replaced by the peer's port
  meta: fc.oneof(fc.constant({}), fc.constant({ scheme: 'http' })),
});

const fileArb: fc.Arbitrary<PlannedFile> = fc
  .record({
    instance: validInstance,
    mutations: fc.array(fc.record({ path: fc.constantFrom(...PATHS), drop: fc.boolean(), value: junkValue }), { maxLength: 2 }),
    body: fc.oneof(
      { weight: 8, arbitrary: fc.constant('record') },
      { weight: 1, arbitrary: fc.oneof(fc.json(), fc.string(), fc.constant('{"peerlb":1,'), fc.constant('')) },
    ),
    name: fc.oneof(
      { weight: 8, arbitrary: fc.constant('own') },
      { weight: 1, arbitrary: fc.constantFrom('other.json', '.hidden.json', 'x.json.tmp', '.x.json.1.tmp', 'noext') },
    ),
    kind: fc.oneof(
      { weight: 10, arbitrary: fc.constant('file' as const) },
      { weight: 1, arbitrary: fc.constantFrom('symlink' as const, 'directory' as const, 'fifo' as const, 'big' as const) },
    ),
    mode: fc.oneof({ weight: 8, arbitrary: fc.constant(0o600) }, { weight: 1, arbitrary: fc.constantFrom(0o644, 0o666, 0o620, 0o400) }),
  })
  .map(({ instance, mutations, body, name, kind, mode }) => {
    const record = recordOf({ ...instance, port: peer.port });
    for (const m of mutations) setPath(record, m.path, m.value, m.drop);
    let content: string;
    try {
      content = body === 'record' ? JSON.stringify(record) : body;
    } catch {
      content = '{}';
    }
    return { name: name === 'own' ? recordFileName(instance.id) : name, kind, content: content ?? 'undefined', mode };
  });

async function plant(dir: string, files: PlannedFile[]): Promise<void> {
  for (const [i, file] of files.entries()) {
    const path = join(dir, file.name);
    await rm(path, { recursive: true, force: true });
    switch (file.kind) {
      case 'file':
        await writeFile(path, file.content, { mode: file.mode });
        await chmod(path, file.mode);
        break;
      case 'big':
        await writeFile(path, Buffer.alloc(1024 * 1024 + 1, 0x20));
        break;
      case 'symlink': {
        const target = join(root, `target-${serial}-${i}.json`);
        await writeFile(target, file.content, { mode: 0o600 });
        await symlink(target, path);
        break;
      }
      case 'directory':
        await mkdir(path);
        break;
      case 'fifo':
        execFileSync('mkfifo', ['-m', '600', path]);
        break;
    }
  }
}

function checkInstances(instances: readonly ServiceInstance[]): void {
  for (const instance of instances) {
    expect(parseInstance(instance).ok).toBe(true);
    expect(instance.service).toBe(SERVICE);
    expect(instance.port).toBe(peer.port);
  }
}

async function freshDir(): Promise<string> {
  const dir = join(root, `run-${++serial}`);
  await mkdir(dir, { mode: 0o700 });
  return dir;
}

describe('fuzzing the local registry directory', () => {
  it('list() and watch(): only valid instances, only typed errors', async () => {
    const seen = { instances: 0 };
    await fc.assert(
      fc.asyncProperty(fc.array(fileArb, { minLength: 1, maxLength: 6 }), async (files) => {
        const dir = await freshDir();
        await plant(dir, files);
        const registry = new LocalRegistry({ dir, rescanIntervalMs: 20, logger: silentLogger });
        const updates: WatchUpdate[] = [];
        try {
          let instances: ServiceInstance[] = [];
          try {
            instances = await registry.list(SERVICE);
          } catch (err) {
            if (!isTypedError(err)) throw new Error(`untyped error: ${describeError(err)}`);
          }
          checkInstances(instances);
          seen.instances += instances.length;
          const watch = registry.watch(SERVICE, (u) => updates.push(u));
          await sleep(20);
          watch.close();
        } finally {
          await registry.close();
          await rm(dir, { recursive: true, force: true });
        }
        for (const u of updates) {
          if (u.ok) checkInstances(u.instances);
          else if (!isTypedError(u.error)) throw new Error(`untyped watch error: ${describeError(u.error)}`);
        }
      }),
      { numRuns: MODE.fuzzRuns, seed: Number(process.env.PEERLB_FUZZ_SEED ?? 7_101) },
    );
    expect(seen.instances).toBeGreaterThan(0);
    expect(unhandled.errors).toEqual([]);
  }, MODE.fuzzTimeoutMs);

  it('client.request(): never dials an invalid peer; an answer or a typed error', async () => {
    const { transportFactory, outcomes, requestOnce } = dialRecorder(peer.port);
    await fc.assert(
      fc.asyncProperty(fc.array(fileArb, { minLength: 1, maxLength: 4 }), async (files) => {
        const dir = await freshDir();
        await plant(dir, files);
        const client = createClient({
          registry: new LocalRegistry({ dir, rescanIntervalMs: 20, logger: silentLogger }),
          closeRegistry: true,
          transportFactory,
          logger: silentLogger,
          timeoutMs: 200,
          retireGraceMs: 100,
          discovery: { emptyGraceMs: 0 },
        });
        try {
          await requestOnce(client, SERVICE);
        } finally {
          await client.close();
          await rm(dir, { recursive: true, force: true });
        }
      }),
      { numRuns: Math.ceil(MODE.fuzzRuns / 3), seed: Number(process.env.PEERLB_FUZZ_SEED ?? 7_102) },
    );
    expect(outcomes.answered).toBeGreaterThan(0);
    expect(outcomes.typed).toBeGreaterThan(0);
    expect(unhandled.errors).toEqual([]);
  }, MODE.fuzzTimeoutMs);
});
