/**
 * Token-bucket arithmetic, pure: no clock, no storage. A bucket holds at most `burst` tokens and
 * refills at `ratePerSec`; each request takes one.
 */
export interface BucketConfig {
  ratePerSec: number;
  burst: number;
}

export interface BucketState {
  readonly tokens: number;
  /** Clock reading (ms) when `tokens` was computed. */
  readonly at: number;
}

export interface TakeResult {
  readonly allowed: boolean;
  readonly state: BucketState;
  /** How long until one token is available; 0 when allowed. */
  readonly retryAfterMs: number;
}

export function fullBucket(config: BucketConfig, now: number): BucketState {
  return { tokens: config.burst, at: now };
}

export function refill(state: BucketState, config: BucketConfig, now: number): BucketState {
  // A clock that steps backwards must not mint or burn tokens.
  const elapsedMs = Math.max(0, now - state.at);
  const tokens = Math.min(config.burst, state.tokens + (elapsedMs * config.ratePerSec) / 1000);
  return { tokens, at: Math.max(now, state.at) };
}

export function take(state: BucketState, config: BucketConfig, now: number, cost = 1): TakeResult {
  const refilled = refill(state, config, now);
  if (refilled.tokens >= cost) {
    return { allowed: true, state: { tokens: refilled.tokens - cost, at: refilled.at }, retryAfterMs: 0 };
  }
  const missing = cost - refilled.tokens;
  return { allowed: false, state: refilled, retryAfterMs: Math.ceil((missing * 1000) / config.ratePerSec) };
}
