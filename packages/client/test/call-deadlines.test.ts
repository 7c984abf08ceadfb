import { describe, expect, it } from 'vitest';
import { DeadlineQueue, type Deadline } from '../src/call/deadlines.js';

interface Entry extends Deadline {
  readonly name: string;
  expiredAt: number | undefined;
}

function entry(name: string, onExpire?: (e: Entry) => void): Entry {
  const e: Entry = {
    name,
    expiredAt: undefined,
    dueAt: 0,
    previousDue: undefined,
    nextDue: undefined,
    lane: undefined,
    expire() {
      e.expiredAt = performance.now();
      onExpire?.(e);
    },
  };
  return e;
}

const delay = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Waits for `cond`; the bound only keeps a broken queue from hanging the suite. */
async function until(cond: () => boolean): Promise<void> {
  const giveUpAt = Date.now() + 5_000;
  while (!cond()) {
    if (Date.now() > giveUpAt) throw new Error('condition not met within 5 s');
    await delay(5);
  }
}

describe('DeadlineQueue', () => {
  it('expires each entry no earlier than its timeout, oldest first', async () => {
    const q = new DeadlineQueue((err) => {
      throw err;
    });
    const order: string[] = [];
    const started = performance.now();
    const a = entry('a', (e) => order.push(e.name));
    q.add(a, 40);
    await delay(15);
    const b = entry('b', (e) => order.push(e.name));
    const bAddedAt = performance.now();
    q.add(b, 40);
    await until(() => b.expiredAt !== undefined);
    expect(order).toEqual(['a', 'b']);
    expect(a.expiredAt! - started).toBeGreaterThanOrEqual(40);
    expect(b.expiredAt! - bAddedAt).toBeGreaterThanOrEqual(40);
    expect(q.size).toBe(0);
  });

  it('never expires a removed entry, keeps one timer per timeout value, and drops idle ones', async () => {
    const q = new DeadlineQueue((err) => {
      throw err;
    });
    const entries = Array.from({ length: 100 }, (_, i) => entry(`e${i}`));
    for (const e of entries) q.add(e, 30);
    const other = entry('other');
    q.add(other, 50);
    expect(q.size).toBe(101);
    expect(q.timers).toBe(2);
    // Remove from the head, the middle and the tail: the links must stay consistent.
    for (const i of [0, 50, 99, 1, 98]) q.remove(entries[i]!);
    q.remove(entries[0]!);
    expect(q.size).toBe(96);
    await until(() => other.expiredAt !== undefined && q.size === 0);
    for (const i of [0, 50, 99, 1, 98]) expect(entries[i]!.expiredAt).toBeUndefined();
    expect(entries.filter((e) => e.expiredAt !== undefined)).toHaveLength(95);
    expect(other.expiredAt).toBeDefined();
    expect(q.size).toBe(0);
    expect(q.timers).toBe(0);
  });

  it('reports a throwing expire and still expires the others', async () => {
    const errors: unknown[] = [];
    const q = new DeadlineQueue((err) => errors.push(err));
    const bad = entry('bad', () => {
      throw new Error('boom');
    });
    const good = entry('good');
    q.add(bad, 10);
    q.add(good, 10);
    await until(() => good.expiredAt !== undefined);
    expect(errors).toHaveLength(1);
    expect(good.expiredAt).toBeDefined();
  });

  it('handles an entry queued from inside an expire of the same timeout', async () => {
    const q = new DeadlineQueue((err) => {
      throw err;
    });
    const late = entry('late');
    const first = entry('first', () => q.add(late, 20));
    q.add(first, 20);
    await until(() => late.expiredAt !== undefined);
    expect(first.expiredAt).toBeDefined();
    expect(late.expiredAt! - first.expiredAt!).toBeGreaterThanOrEqual(20);
    expect(q.timers).toBe(0);
  });
});
