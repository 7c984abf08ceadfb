import { describe, expect, it } from 'vitest';
import { Lifecycle, canTransition, type RegistrationState } from '../src/lifecycle.js';

describe('lifecycle', () => {
  it('follows the happy path and reports each change once', () => {
    const seen: Array<[RegistrationState, RegistrationState]> = [];
    const lc = new Lifecycle((s, p) => seen.push([s, p]));
    for (const s of ['registering', 'registered', 'unhealthy', 'registered', 'reregistering', 'registered', 'draining', 'closed'] as const) {
      expect(lc.to(s)).toBe(true);
    }
    expect(lc.to('closed')).toBe(true);
    expect(seen).toHaveLength(8);
    expect(seen[0]).toEqual(['registering', 'starting']);
  });

  it('never leaves closed and never goes back from draining to registered', () => {
    const lc = new Lifecycle(() => {});
    lc.to('registering');
    lc.to('registered');
    lc.to('draining');
    expect(lc.to('registered')).toBe(false);
    expect(lc.to('reregistering')).toBe(false);
    expect(lc.state).toBe('draining');
    lc.to('closed');
    const all: RegistrationState[] = ['starting', 'registering', 'registered', 'unhealthy', 'reregistering', 'draining', 'deregistered'];
    for (const s of all) expect(canTransition('closed', s)).toBe(false);
  });

  it('an explicit deregistration can still be followed by a drain', () => {
    expect(canTransition('registered', 'deregistered')).toBe(true);
    expect(canTransition('deregistered', 'draining')).toBe(true);
    expect(canTransition('deregistered', 'registered')).toBe(false);
  });
});
