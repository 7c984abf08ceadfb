import { EventEmitter } from 'node:events';
import { describe, expect, it } from 'vitest';
import { ProcessHooks, type HookParticipant } from '../src/process-hooks.js';

class FakeProcess extends EventEmitter {
  readonly exits: number[] = [];
  exit(code?: number): void {
    this.exits.push(code ?? 0);
  }
}

function setup(crashTimeoutMs = 1_000) {
  const proc = new FakeProcess();
  const printed: string[] = [];
  const clock = { now: 0 };
  const hooks = new ProcessHooks(proc, {
    crashTimeoutMs,
    printError: (m) => printed.push(m),
    repeatWindowMs: 500,
    now: () => clock.now,
  });
  return { proc, hooks, printed, clock };
}

function participant(overrides: Partial<HookParticipant> = {}): HookParticipant & { log: string[] } {
  const log: string[] = [];
  return {
    log,
    shutdown: async () => {
      log.push('shutdown');
    },
    crash: async () => {
      log.push('crash');
    },
    ...overrides,
  };
}

const tick = () => new Promise((r) => setTimeout(r, 0));

describe('process hooks', () => {
  it('installs nothing until a participant joins, and removes its listeners when the last leaves', () => {
    const { proc, hooks } = setup();
    expect(proc.listenerCount('SIGTERM')).toBe(0);
    const removeA = hooks.onSignals(participant());
    const removeB = hooks.onSignals(participant());
    const removeCrash = hooks.onCrash(participant());
    expect(proc.listenerCount('SIGTERM')).toBe(1);
    expect(proc.listenerCount('SIGINT')).toBe(1);
    expect(proc.listenerCount('uncaughtException')).toBe(1);
    expect(proc.listenerCount('unhandledRejection')).toBe(1);
    removeA();
    expect(proc.listenerCount('SIGTERM')).toBe(1);
    removeB();
    removeCrash();
    expect(proc.eventNames()).toEqual([]);
  });

  it('first signal: every participant shuts down, then exit 0', async () => {
    const { proc, hooks } = setup();
    let release!: () => void;
    const slow = participant({ shutdown: () => new Promise<void>((r) => (release = r)) });
    const fast = participant();
    hooks.onSignals(slow);
    hooks.onSignals(fast);
    proc.emit('SIGTERM', 'SIGTERM');
    await tick();
    expect(fast.log).toEqual(['shutdown']);
    expect(proc.exits).toEqual([]);
    release();
    await tick();
    expect(proc.exits).toEqual([0]);
  });

  it('a second signal during shutdown exits at once, non-zero', async () => {
    const { proc, hooks, clock } = setup();
    hooks.onSignals(participant({ shutdown: () => new Promise<void>(() => {}) }));
    proc.emit('SIGINT', 'SIGINT');
    await tick();
    expect(proc.exits).toEqual([]);
    clock.now = 600;
    proc.emit('SIGTERM', 'SIGTERM');
    expect(proc.exits).toEqual([143]);
  });

  it('one Ctrl-C forwarded twice by a package runner does not cut the drain short (mesh report)', async () => {
    const { proc, hooks, clock } = setup();
    const p = participant({ shutdown: () => new Promise<void>(() => {}) });
    hooks.onSignals(p);
    proc.emit('SIGINT', 'SIGINT');
    clock.now = 3;
    proc.emit('SIGINT', 'SIGINT');
    await tick();
    expect(proc.exits).toEqual([]);
    clock.now = 501;
    proc.emit('SIGINT', 'SIGINT');
    expect(proc.exits).toEqual([130]);
  });

  it('a failed shutdown exits 1', async () => {
    const { proc, hooks } = setup();
    hooks.onSignals(participant({ shutdown: () => Promise.reject(new Error('stuck')) }));
    proc.emit('SIGTERM', 'SIGTERM');
    await tick();
    expect(proc.exits).toEqual([1]);
  });

  it('a crash prints the error, lets participants deregister, exits 1', async () => {
    const { proc, hooks, printed } = setup();
    const p = participant();
    hooks.onCrash(p);
    proc.emit('unhandledRejection', new Error('boom'), Promise.resolve());
    await tick();
    expect(p.log).toEqual(['crash']);
    expect(printed[0]).toMatch(/unhandledRejection: Error: boom/);
    expect(proc.exits).toEqual([1]);
  });

  it('a crash cleanup that hangs is cut short by the bound', async () => {
    const { proc, hooks } = setup(50);
    hooks.onCrash(participant({ crash: () => new Promise<void>(() => {}) }));
    proc.emit('uncaughtException', new Error('boom'));
    await new Promise((r) => setTimeout(r, 120));
    expect(proc.exits).toEqual([1]);
  });
});
