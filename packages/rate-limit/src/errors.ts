/**
 * A limiter option is invalid; `field` names it. The same `code` as `InvalidOptionsError` of the
 * other peerlb packages (the client and the serving side re-throw it as theirs), so this package
 * depends on none of them.
 */
export class RateLimitOptionsError extends Error {
  readonly code = 'PEERLB_INVALID_OPTIONS';
  readonly field: string;
  /** What is wrong, without the field. */
  readonly reason: string;

  constructor(field: string, reason: string) {
    super(`${field}: ${reason}`);
    this.name = 'RateLimitOptionsError';
    this.field = field;
    this.reason = reason;
  }
}
