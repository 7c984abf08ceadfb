/**
 * The wire format of a caller's remaining time, in the spirit of gRPC's `grpc-timeout`: a
 * relative duration (clocks of two machines never agree, a duration needs no agreement) written
 * as 1 to 8 digits and a unit: `H` hours, `M` minutes, `S` seconds, `m` milliseconds,
 * `u` microseconds, `n` nanoseconds. Examples: `850m`, `2S`, `1500u`.
 */
export const TIMEOUT_HEADER = 'x-peerlb-timeout';

/** The longest budget a serving side accepts by default; longer values are clamped to it. */
export const DEFAULT_MAX_TIMEOUT_MS = 300_000;

/** More values than this in one request (a repeated header) and the header is ignored. */
export const MAX_TIMEOUT_VALUES = 8;

// Longest text worth splitting: MAX_TIMEOUT_VALUES values of 9 characters and their separators.
// Anything longer is refused before any work that grows with the input.
const MAX_HEADER_LENGTH = MAX_TIMEOUT_VALUES * 11;

const VALUE = /^([0-9]{1,8})([HMSmun])$/;

const MS_PER_UNIT: Readonly<Record<string, number>> = {
  H: 3_600_000,
  M: 60_000,
  S: 1_000,
  m: 1,
  u: 1e-3,
  n: 1e-6,
};

/**
 * Milliseconds left according to a received `x-peerlb-timeout`, or `undefined` when there is no
 * usable value. Never throws, whatever it is given:
 * - garbage (a sign, a decimal point, spaces inside, an unknown unit, more than 8 digits, not a
 *   string) is skipped;
 * - a repeated header (an array, or values joined with `,` as Node joins repeated headers) counts
 *   its smallest valid value: a proxy or a second caller may have added its own, and the
 *   strictest one is the one someone is waiting on; more than `MAX_TIMEOUT_VALUES` values, or a
 *   header longer than a few dozen characters, is ignored outright;
 * - a value above `maxMs` is clamped to `maxMs`.
 * `0` means the caller's time is up already.
 */
export function parseTimeout(value: unknown, maxMs: number = DEFAULT_MAX_TIMEOUT_MS): number | undefined {
  if (typeof value === 'string') return clamp(parseList(value), maxMs);
  if (!Array.isArray(value) || value.length === 0 || value.length > MAX_TIMEOUT_VALUES) return undefined;
  let best: number | undefined;
  let count = 0;
  for (const item of value as unknown[]) {
    if (typeof item !== 'string') continue;
    if (item.length > MAX_HEADER_LENGTH) return undefined;
    count += countValues(item);
    if (count > MAX_TIMEOUT_VALUES) return undefined;
    const ms = parseList(item);
    if (ms !== undefined && (best === undefined || ms < best)) best = ms;
  }
  return clamp(best, maxMs);
}

/**
 * The header value for `ms` milliseconds left: whole milliseconds, rounded down (the receiver
 * never believes it has more time than the sender), at least `1m` while any time is left, and
 * in seconds when milliseconds would need more than 8 digits. `0m` for no time left.
 */
export function formatTimeout(ms: number): string {
  if (!(ms > 0)) return '0m';
  if (ms < 1) return '1m';
  if (ms < 1e8) return `${Math.floor(ms)}m`;
  return `${Math.min(99_999_999, Math.floor(ms / 1_000))}S`;
}

function parseList(text: string): number | undefined {
  if (text.length > MAX_HEADER_LENGTH) return undefined;
  if (!text.includes(',')) return parseOne(text.trim());
  const parts = text.split(',');
  if (parts.length > MAX_TIMEOUT_VALUES) return undefined;
  let best: number | undefined;
  for (const part of parts) {
    const ms = parseOne(part.trim());
    if (ms !== undefined && (best === undefined || ms < best)) best = ms;
  }
  return best;
}

function parseOne(text: string): number | undefined {
  const match = VALUE.exec(text);
  if (match === null) return undefined;
  return Number(match[1]) * MS_PER_UNIT[match[2]!]!;
}

function countValues(text: string): number {
  let n = 1;
  for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) === 44 /* , */) n++;
  return n;
}

function clamp(ms: number | undefined, maxMs: number): number | undefined {
  return ms === undefined ? undefined : Math.min(ms, maxMs);
}
