import { MemoryRegistry } from '../src/index.js';
import { registryConformance } from '../src/testkit/index.js';
import { silentLogger } from '../src/logger.js';

// One in-process backend shared by every client the suite opens: each `open()` returns a view
// whose close() does not tear down the shared state, as separate clients of one server would.
let shared = new MemoryRegistry({ logger: silentLogger });

registryConformance('memory', {
  settleMs: 200,
  minCheckIntervalMs: 50,
  async open() {
    const backend = shared;
    const view = Object.create(backend) as MemoryRegistry;
    view.close = async () => {};
    return view;
  },
  async restart() {
    shared.reset();
  },
  async injectMalformed(service) {
    shared.addStatic({ id: `${service}-bad`, service, address: 'http://evil', port: 99999 });
    shared.addStatic({ id: `${service}-worse`, service, address: '127.0.0.1', port: -1 });
  },
  async teardown() {
    await shared.close();
    shared = new MemoryRegistry({ logger: silentLogger });
  },
});
