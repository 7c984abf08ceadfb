import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalRegistry, silentLogger } from '../src/index.js';
import { registryConformance } from '../src/testkit/index.js';

// Every client the suite opens is a separate LocalRegistry object on one shared directory, as
// separate processes would be.
let dir = '';
// The suite's two-process test runs the testkit's peer-process script; until that script exists
// the suite reports the test as not applicable (local-process.test.ts covers processes meanwhile).
const peerScriptExists = existsSync(new URL('../src/testkit/peer-process.ts', import.meta.url));

registryConformance('local', {
  settleMs: 500,
  minCheckIntervalMs: 50,
  async setup() {
    dir = await mkdtemp(join(tmpdir(), 'peerlb-local-conformance-'));
  },
  async open() {
    return new LocalRegistry({ dir, logger: silentLogger, rescanIntervalMs: 200 });
  },
  ...(peerScriptExists ? { peerProcessConfig: () => ({ kind: 'local' as const, dir }) } : {}),
  async restart() {
    // The local registry's "restart": its directory is wiped.
    await rm(dir, { recursive: true, force: true });
  },
  async injectMalformed(service) {
    await writeFile(join(dir, `${service}-garbage.json`), '{"peerlb": 1, "instance": ', { mode: 0o600 });
    await writeFile(join(dir, `${service}-foreign.json`), JSON.stringify({ id: `${service}-foreign`, service, address: '127.0.0.1', port: 99_999 }), { mode: 0o600 });
  },
  async teardown() {
    await rm(dir, { recursive: true, force: true });
  },
});
