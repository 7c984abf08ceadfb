import { availableParallelism } from 'node:os';
import { describe, expect, it } from 'vitest';
import { InvalidOptionsError, MemoryRegistry, silentLogger } from '@peerlb/registry';
import { startService } from '../src/index.js';
import { resolveRestart, resolveWorkerCount } from '../src/workers/worker-options.js';

describe('workers options', () => {
  it("'auto' is one worker per CPU this process may use; a count is 1..256", () => {
    expect(resolveWorkerCount('auto')).toBe(availableParallelism());
    expect(resolveWorkerCount(3)).toBe(3);
    for (const bad of [0, 1.5, 300, '2', null]) expect(() => resolveWorkerCount(bad)).toThrow(/workers/);
  });

  it('restart settings default to a bounded backoff and name the bad field', () => {
    expect(resolveRestart(undefined)).toEqual({ minDelayMs: 100, maxDelayMs: 5_000, maxRestarts: 5, windowMs: 60_000 });
    expect(() => resolveRestart({ minDelayMs: -1 })).toThrow(/workerRestart\.minDelayMs/);
    expect(() => resolveRestart({ minDelayMs: 500, maxDelayMs: 100 })).toThrow(/workerRestart\.maxDelayMs/);
  });

  it('startService refuses a fixed port for several workers before forking anything', async () => {
    const registry = new MemoryRegistry({ logger: silentLogger });
    await expect(
      startService({ service: 'orders', registry, handler: () => {}, workers: 2, port: 8080, handleSignals: false }),
    ).rejects.toThrow(InvalidOptionsError);
    await registry.close();
  });
});
