import { describe, expect, it } from 'vitest';
import { TypedEmitter } from '../src/typed-emitter.js';

type Events = { ping: [n: number]; error: [error: Error] };

function setup() {
  const warnings: string[] = [];
  const emitter = new TypedEmitter<Events>({ warn: (m) => warnings.push(m) });
  return { emitter, warnings };
}

describe('typed emitter', () => {
  it('a throwing listener is logged and the others still run', () => {
    const { emitter, warnings } = setup();
    const got: number[] = [];
    emitter.on('ping', () => {
      throw new Error('bad listener');
    });
    emitter.on('ping', (n) => got.push(n));
    emitter.emit('ping', 1);
    expect(got).toEqual([1]);
    expect(warnings[0]).toMatch(/listener for "ping" threw: bad listener/);
  });

  it('an error event nobody listens to is logged, not thrown', () => {
    const { emitter, warnings } = setup();
    expect(() => emitter.emit('error', new Error('registry down'))).not.toThrow();
    expect(warnings).toEqual(['registration error: registry down']);
  });

  it('once fires once, and off removes a once listener too', () => {
    const { emitter } = setup();
    const got: number[] = [];
    const a = (n: number) => got.push(n);
    const b = (n: number) => got.push(n * 10);
    emitter.once('ping', a);
    emitter.once('ping', b);
    emitter.off('ping', b);
    emitter.emit('ping', 1);
    emitter.emit('ping', 2);
    expect(got).toEqual([1]);
    expect(emitter.listenerCount('ping')).toBe(0);
  });
});
