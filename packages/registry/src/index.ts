export { MemoryRegistry } from './memory/memory-registry.js';
export type { MemoryRegistryOptions } from './memory/memory-registry.js';
export * from './errors.js';
export * from './options.js';
export * from './types.js';
export {
  parseInstance,
  validateInstanceInput,
  validateServiceName,
  validateInstanceId,
  validateCheckSpec,
  validateFilter,
  matchesFilter,
  acceptInstances,
  sameInstances,
  isValidAddress,
  isValidPort,
  isValidServiceName,
  isValidInstanceId,
  schemeOf,
  SCHEME_META_KEY,
} from './validate.js';
export type { Validation, NormalisedCheck } from './validate.js';
export { consoleLogger, silentLogger } from './logger.js';
export { backoffDelay, sleep } from './backoff.js';
export type { BackoffOptions } from './backoff.js';
export { WatchEmitter } from './watch-emitter.js';
export { probeHttp, startHttpCheckLoop, statusFromHttpCode, httpCheckUrl } from './checks/http-check.js';
export type { HttpCheckLoop } from './checks/http-check.js';
export * from './consul/index.js';
export * from './local/index.js';
export { openRegistry, registryFromEnv } from './open-registry.js';
export type { RegistryConfig, RegistryFromEnvOptions } from './open-registry.js';
export type { TelemetryOptions } from './telemetry-options.js';
