export { registerService } from './register-service.js';
export { startService } from './start-service.js';
export type { ServiceHandle, StartedService } from './handle.js';
export type {
  RegisterServiceOptions,
  StartServiceOptions,
  StartWorkersOptions,
  CheckOptions,
  HttpCheckOptions,
  HealthFunction,
  RequestListener,
  EventListeners,
} from './options.js';
export type { RegistrationEvents } from './registration.js';
export type { RegistrationState } from './lifecycle.js';
export { RegistrationFailedError, PortUnavailableError, HealthCheckFailedError, DEADLINE_EXPIRED_CODE } from './errors.js';
export { CALLER_HEADER, callerKeyOf, createRequestRateLimiter } from './rate-limit/caller-limiter.js';
export type { RateLimitDecision, RateLimitOptions, RequestRateLimiter } from './rate-limit/caller-limiter.js';
export { createServing, composeSteps } from './serving/serving-middleware.js';
export type { Serving, ServingStats, ExpressStyleMiddleware, FastifyStyleHook } from './serving/serving-middleware.js';
export type { ServingStep, ServingHandler } from './serving/serving-step.js';
export type { ServingOptions } from './serving/serving-steps.js';
export { LoadReporter, LOAD_REPORT_HEADER } from './serving/load-report.js';
export type { LoadReportOptions } from './serving/load-report.js';
export { deadlineStep } from './serving/deadline-step.js';
export type { DeadlineOptions, DeadlineStats, DeadlineStep } from './serving/deadline-step.js';
export { TIMEOUT_HEADER, currentDeadline, runWithDeadline, timeLeftMs, RequestDeadline } from '@peerlb/deadline';
export type { ServiceCluster, WorkerInfo, ClusterEvents } from './workers/cluster-primary.js';
export type { WorkerRestartOptions } from './workers/worker-options.js';
