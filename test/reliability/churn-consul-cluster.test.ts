import { describe, it } from 'vitest';
import { runChurn } from './support/churn.js';
import { MODE } from './support/mode.js';

// The churn of churn-consul.test.ts on a real Consul 1.8.7 cluster (3 servers, 3 client agents):
// instances register through two client agents in turn, the load generator watches through the
// third. See support/churn.ts for the schedule and what is asserted.
describe('churn on a real Consul cluster', () => {
  it(
    'no failed GET, no POST executed twice, no leaked handle, heap back within 10%',
    () => runChurn('consul-cluster'),
    MODE.testTimeoutMs(MODE.warmUpMs + MODE.churnMs + 30_000),
  );
});
