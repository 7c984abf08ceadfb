export type {
  Balancer,
  LoadMetric,
  LoadTracker,
  Outcome,
  PickablePeer,
  PickContext,
  Picker,
  PickResult,
} from './types.js';
export { leastRequestsLoad, peakEwma, InFlightTracker, PeakEwmaTracker, validateLoadMetric } from './load-metrics.js';
export type { PeakEwmaOptions } from './load-metrics.js';
export { p2c, trackerLoads, twoChoices, withServerLoad } from './p2c.js';
export { LOAD_REPORT_HEADER, parseLoadReport } from './load-report.js';
export type { LoadReport } from './load-report.js';
export { ServerLoadBoard, PeerServerLoad } from './server-load.js';
export type { LoadReportOptions, PeerLoadReport } from './server-load.js';
export type { LoadsOf } from './p2c.js';
export type { P2cOptions } from './p2c.js';
export { leastRequests } from './least-requests.js';
export { roundRobin } from './round-robin.js';
export { random } from './random-balancer.js';
export { consistentHash, hash32 } from './consistent-hash.js';
export type { ConsistentHashOptions } from './consistent-hash.js';
export { eligiblePeers, validatePanicThreshold, DEFAULT_HEALTHY_PANIC_THRESHOLD } from './eligible.js';
export type { Eligible, EligibleOptions } from './eligible.js';
export { seededRandom } from './random.js';
