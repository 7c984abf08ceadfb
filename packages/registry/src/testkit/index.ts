export { registryConformance } from './conformance.js';
export type { ConformanceTarget, PeerRegistryConfig } from './target.js';
export { startHealthServer } from './health-server.js';
export type { HealthServer } from './health-server.js';
export { WatchRecorder } from './watch-recorder.js';
