/** The header a peerlb client sends to say who is calling; servers key their rate limit on it. */
export const CALLER_HEADER = 'x-peerlb-caller';

export const MAX_CALLER_LENGTH = 128;

// Visible ASCII only: the key ends up in a header, in logs and in metrics labels, so CR/LF,
// spaces and non-ASCII are refused on both sides of the wire by this one rule.
const CALLER = /^[\x21-\x7e]+$/;

/** True for a caller identity both the client sends and the server accepts. */
export function isValidCaller(caller: unknown): caller is string {
  return typeof caller === 'string' && caller.length <= MAX_CALLER_LENGTH && CALLER.test(caller);
}
