export { CALLER_HEADER, MAX_CALLER_LENGTH, isValidCaller } from './caller.js';
export { CallerRateLimiter } from './caller-rate-limiter.js';
export { RateLimitOptionsError } from './errors.js';
export type { CallerRateLimitOptions, RateDecision } from './caller-rate-limiter.js';
export { fullBucket, refillBucket, takeToken } from './token-bucket.js';
export type { BucketConfig, BucketState } from './token-bucket.js';
