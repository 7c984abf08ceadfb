import { describe, it } from 'vitest';
import { runChurn } from './support/churn.js';
import { MODE } from './support/mode.js';

// Instances killed (SIGKILL), stopped (SIGTERM) and started at random under steady load, on the
// embedded local registry. See support/churn.ts for the schedule and what is asserted.
describe('churn on the local registry', () => {
  it(
    'no failed GET, no POST executed twice, no leaked handle, heap back within 10%',
    () => runChurn('local'),
    MODE.testTimeoutMs(MODE.warmUpMs + MODE.churnMs + 20_000),
  );
});
