import { InvalidOptionsError } from './errors.js';

/**
 * The one way the client validates options: `xxxOption(field, value, fallback, rule)`, the field
 * (as the user wrote it, dotted) first, and an `InvalidOptionsError` naming it.
 */

/** Node turns a timer longer than this into a 1 ms one (with a warning): no duration may exceed it. */
export const MAX_DURATION_MS = 2 ** 31 - 1;

export interface NumberRule {
  readonly min?: number;
  /** When true, `min` itself is rejected (strictly greater than). */
  readonly exclusiveMin?: boolean;
  readonly max?: number;
  readonly integer?: boolean;
}

/** An options bag: `undefined` means all defaults; anything but a plain object is refused. */
export function optionsObject<T extends object>(field: string, value: T | undefined): Partial<T> {
  if (value === undefined) return {};
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new InvalidOptionsError(field, 'must be an object');
  }
  return value;
}

/** A finite number within `rule`, or `fallback` when left out. */
export function numberOption(field: string, value: unknown, fallback: number, rule: NumberRule = {}): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isFinite(value)) {
    throw new InvalidOptionsError(field, `must be a finite number, got ${describe(value)}`);
  }
  if (rule.integer === true && !Number.isInteger(value)) {
    throw new InvalidOptionsError(field, `must be an integer, got ${value}`);
  }
  if (rule.min !== undefined && (rule.exclusiveMin === true ? value <= rule.min : value < rule.min)) {
    throw new InvalidOptionsError(field, `must be ${rule.exclusiveMin === true ? '>' : '>='} ${rule.min}, got ${value}`);
  }
  if (rule.max !== undefined && value > rule.max) {
    throw new InvalidOptionsError(field, `must be <= ${rule.max}, got ${value}`);
  }
  return value;
}

/**
 * A duration in milliseconds: finite, > 0 (or >= 0 with `allowZero`), at most `MAX_DURATION_MS`
 * (`allowInfinity`: Infinity means "never"), or `fallback` when left out.
 */
export function durationOption(
  field: string,
  value: unknown,
  fallback: number,
  rule: { readonly min?: number; readonly allowZero?: boolean; readonly allowInfinity?: boolean } = {},
): number {
  if (value === undefined) return fallback;
  if (value === Infinity && rule.allowInfinity === true) return value;
  if (typeof value === 'number' && value > MAX_DURATION_MS) {
    throw new InvalidOptionsError(field, `must be at most ${MAX_DURATION_MS} ms (about 24.8 days), got ${value}`);
  }
  return numberOption(field, value, fallback, {
    min: rule.min ?? 0,
    exclusiveMin: rule.min === undefined && rule.allowZero !== true,
  });
}

/** A duration that must be given: as `durationOption`, but leaving it out is an error naming `field`. */
export function requiredDurationOption(field: string, value: unknown): number {
  if (value === undefined) throw new InvalidOptionsError(field, 'is required: a positive number of milliseconds');
  return durationOption(field, value, 0);
}

/** A byte or request count limit: an integer >= `min`, or Infinity (the default: no limit). */
export function limitOption(field: string, value: unknown, min: number): number {
  if (value === undefined || value === Infinity) return Infinity;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min) {
    throw new InvalidOptionsError(field, `must be an integer >= ${min} (or Infinity for no limit), got ${describe(value)}`);
  }
  return value;
}

export function booleanOption(field: string, value: unknown, fallback: boolean): boolean {
  if (value === undefined) return fallback;
  if (typeof value !== 'boolean') throw new InvalidOptionsError(field, `must be a boolean, got ${describe(value)}`);
  return value;
}

export function functionOption<F extends (...args: never[]) => unknown>(
  field: string,
  value: unknown,
  fallback: F,
): F {
  if (value === undefined) return fallback;
  if (typeof value !== 'function') throw new InvalidOptionsError(field, `must be a function, got ${describe(value)}`);
  return value as F;
}

function describe(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}...` : value);
  if (typeof value === 'number' || typeof value === 'boolean' || value === undefined || value === null) {
    return String(value);
  }
  return typeof value;
}
