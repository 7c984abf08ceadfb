export { OutlierDetector } from './outlier-detector.js';
export type { OutlierDetectionOptions, OutlierEvent, OutlierPeerState } from './outlier-detector.js';
export {
  classifyFailure,
  isIdempotentMethod,
  isRetryableStatus,
  parseRetryAfter,
  shouldRetry,
  RetryBudget,
} from './retry.js';
export type {
  FailureClass,
  FailurePhase,
  FailureReason,
  RetryBudgetOptions,
  RetryDecision,
  RetryQuestion,
  RetryRefusal,
} from './retry.js';
export { RateLimitedError } from './rate-limiter.js';
export { CallerRateLimiter } from '@peerlb/rate-limit';
export type { CallerRateLimitOptions, RateDecision } from '@peerlb/rate-limit';
export { BreakerFactory, BreakerOpenError, isPeerFault } from './breaker.js';
export type { BreakerCall, BreakerOptions, BreakerState, PeerBreaker } from './breaker.js';
