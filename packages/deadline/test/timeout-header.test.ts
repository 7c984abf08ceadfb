import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DEFAULT_MAX_TIMEOUT_MS, MAX_TIMEOUT_VALUES, formatTimeout, parseTimeout } from '../src/index.js';

describe('parseTimeout', () => {
  it('reads every unit of the grpc-timeout style format', () => {
    expect(parseTimeout('850m')).toBe(850);
    expect(parseTimeout('2S')).toBe(2_000);
    expect(parseTimeout('1M')).toBe(60_000);
    expect(parseTimeout('1H', Infinity)).toBe(3_600_000);
    expect(parseTimeout('1500u')).toBeCloseTo(1.5, 9);
    expect(parseTimeout('2000000n')).toBeCloseTo(2, 9);
    expect(parseTimeout('0m')).toBe(0);
  });

  it('ignores garbage, negative and malformed values', () => {
    for (const bad of ['', ' ', '-5m', '+5m', '5', 'm', '5ms', '5s', '1.5S', '5 m', '0x10m', '123456789m', 'NaNm', '∞S', '５m', '5\nm']) {
      expect(parseTimeout(bad), JSON.stringify(bad)).toBeUndefined();
    }
    for (const notText of [undefined, null, 5, {}, [], [5], Symbol('x')]) {
      expect(parseTimeout(notText)).toBeUndefined();
    }
  });

  it('clamps huge values to the maximum', () => {
    expect(parseTimeout('99999999H')).toBe(DEFAULT_MAX_TIMEOUT_MS);
    expect(parseTimeout('10S', 5_000)).toBe(5_000);
  });

  it('takes the smallest valid value of a repeated header, skipping invalid ones', () => {
    expect(parseTimeout('850m, 2S')).toBe(850);
    expect(parseTimeout(['3S', '200m'])).toBe(200);
    expect(parseTimeout('garbage, 300m')).toBe(300);
    expect(parseTimeout(['x', 'y'])).toBeUndefined();
  });

  it('ignores a header with too many values or too long a text', () => {
    const many = Array.from({ length: MAX_TIMEOUT_VALUES + 1 }, () => '1S');
    expect(parseTimeout(many.join(','))).toBeUndefined();
    expect(parseTimeout(many)).toBeUndefined();
    expect(parseTimeout(['1S,1S,1S,1S', '1S,1S,1S,1S,1S'])).toBeUndefined();
    expect(parseTimeout('1S' + ' '.repeat(10_000))).toBeUndefined();
  });

  it('never throws and returns undefined or a finite number within bounds for any input', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.array(fc.string()), fc.anything()), (value) => {
        const ms = parseTimeout(value, 10_000);
        return ms === undefined || (Number.isFinite(ms) && ms >= 0 && ms <= 10_000);
      }),
      { numRuns: 2_000 },
    );
  });
});

describe('formatTimeout', () => {
  it('writes whole milliseconds rounded down, never more time than there is', () => {
    expect(formatTimeout(850.9)).toBe('850m');
    expect(formatTimeout(0.2)).toBe('1m');
    expect(formatTimeout(0)).toBe('0m');
    expect(formatTimeout(-3)).toBe('0m');
    expect(formatTimeout(Number.NaN)).toBe('0m');
  });

  it('switches to seconds beyond 8 digits of milliseconds', () => {
    expect(formatTimeout(2 ** 31 - 1)).toBe('2147483S');
    expect(formatTimeout(1e20)).toBe('99999999S');
  });

  it('round-trips through parseTimeout for any budget a client can have', () => {
    fc.assert(
      fc.property(fc.double({ min: 1, max: 2 ** 31 - 1, noNaN: true }), (ms) => {
        const back = parseTimeout(formatTimeout(ms), Infinity)!;
        return back <= ms && ms - back < (ms < 1e8 ? 1 : 1_000);
      }),
    );
  });
});
