/**
 * Token-bucket arithmetic with no clock and no storage: a bucket holds at most `burst` tokens
 * and refills at `ratePerSec`. A new bucket starts full, a clock stepping back neither mints nor
 * burns tokens, and the wait is rounded up. The state is updated in place and the answer is a
 * number, so a take allocates nothing: it runs on every request of the client.
 */
export interface BucketConfig {
  readonly ratePerSec: number;
  readonly burst: number;
}

export interface BucketState {
  tokens: number;
  /** Clock reading (ms) when `tokens` was computed. */
  at: number;
}

/**
 * Float slack, in tokens. It makes `retryAfterMs` exact: waiting exactly that long always
 * succeeds, one millisecond less always fails, whatever rounding the refill products suffer.
 */
const SLACK = 1e-9;

export function fullBucket(config: BucketConfig, now: number): BucketState {
  return { tokens: config.burst, at: now };
}

/** Brings `state` forward to `now`. */
export function refillBucket(state: BucketState, config: BucketConfig, now: number): void {
  const elapsedMs = now - state.at;
  if (elapsedMs > 0) {
    state.tokens = Math.min(config.burst, state.tokens + (elapsedMs * config.ratePerSec) / 1000);
    state.at = now;
  }
}

/**
 * Takes `cost` tokens if there are enough. Returns 0 when taken, otherwise the whole number of
 * milliseconds (>= 1) until enough will be there. Updates `state` in place either way.
 */
export function takeToken(state: BucketState, config: BucketConfig, now: number, cost = 1): number {
  refillBucket(state, config, now);
  if (state.tokens + SLACK >= cost) {
    state.tokens = Math.max(0, state.tokens - cost);
    return 0;
  }
  // Half the slack here, the whole slack in the test above: the margin absorbs rounding.
  const waitMs = ((cost - state.tokens - SLACK / 2) * 1000) / config.ratePerSec;
  return Math.max(1, Math.ceil(waitMs));
}
