export { registerService } from './register-service.js';
export { startService } from './start-service.js';
export type { ServiceHandle, StartedService } from './handle.js';
export type {
  RegisterServiceOptions,
  StartServiceOptions,
  CheckOptions,
  HttpCheckOptions,
  HealthFunction,
  RequestListener,
  EventListeners,
} from './options.js';
export type { RegistrationEvents } from './registration.js';
export type { RegistrationState } from './lifecycle.js';
export { RegistrationFailedError, PortUnavailableError, HealthCheckFailedError } from './errors.js';
export { CALLER_HEADER, callerKeyOf, createRequestRateLimiter } from './rate-limit/caller-limiter.js';
export type { RateLimitDecision, RateLimitOptions, RequestRateLimiter } from './rate-limit/caller-limiter.js';
export { createServing, composeSteps } from './serving/serving-middleware.js';
export type { Serving, ServingStep, ServingHandler, ExpressStyleMiddleware, FastifyStyleHook } from './serving/serving-middleware.js';
export type { ServingOptions } from './serving/serving-steps.js';
export { LoadReporter, LOAD_REPORT_HEADER } from './serving/load-report.js';
export type { LoadReportOptions } from './serving/load-report.js';
