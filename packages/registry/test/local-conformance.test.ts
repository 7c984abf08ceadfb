import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalRegistry, silentLogger } from '../src/index.js';
import { registryConformance } from '../src/testkit/index.js';

// Every client the suite opens is a separate LocalRegistry object on one shared directory, as
// separate processes would be.
let dir = '';

registryConformance('local', {
  settleMs: 500,
  minCheckIntervalMs: 50,
  async setup() {
    dir = await mkdtemp(join(tmpdir(), 'peerlb-local-conformance-'));
  },
  async open() {
    return new LocalRegistry({ dir, logger: silentLogger, rescanIntervalMs: 200 });
  },
  peerProcessConfig: () => ({ kind: 'local', dir }),
  async restart() {
    // The local registry's "restart": its directory is wiped.
    await rm(dir, { recursive: true, force: true });
  },
  async injectMalformed(service) {
    const put = (name: string, body: string) => writeFile(join(dir, name), body, { mode: 0o600 });
    await put(`${service}-garbage.json`, '{"peerlb": 1, "instance": ');
    await put(`${service}-foreign.json`, JSON.stringify({ id: `${service}-foreign`, service, address: '127.0.0.1', port: 80 }));
    // Well-formed and passing, but with a port no instance can have: must be dropped, not dialled.
    const now = Date.now();
    await put(
      `${service}-badport.json`,
      JSON.stringify({
        peerlb: 1,
        instance: { id: `${service}-badport`, service, address: '127.0.0.1', port: 99_999, tags: [], meta: {} },
        owner: { pid: 1, hostname: 'elsewhere', registry: 'other' },
        checks: { ttl: { ttlMs: 60_000, status: 'passing', output: '', since: now, expiresAt: now + 60_000 } },
        registeredAt: now,
      }),
    );
  },
  async teardown() {
    await rm(dir, { recursive: true, force: true });
  },
});
