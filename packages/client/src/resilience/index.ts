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
export { CallerRateLimiter, RateLimitedError } from './rate-limiter.js';
export type { CallerRateLimitOptions, RateDecision } from './rate-limiter.js';
export { fullBucket, refillBucket, takeToken } from './token-bucket.js';
export type { BucketConfig, BucketState } from './token-bucket.js';
export { BreakerFactory, BreakerOpenError, isPeerFault } from './breaker.js';
export type { BreakerCall, BreakerOptions, BreakerState, PeerBreaker } from './breaker.js';
