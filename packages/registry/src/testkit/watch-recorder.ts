import type { Registry, WatchHandle, WatchOptions, WatchUpdate } from '../types.js';

/** Records every update a watch delivers and lets a test wait for a condition on the latest one. */
export class WatchRecorder {
  readonly updates: WatchUpdate[] = [];
  private readonly handle: WatchHandle;
  private waiters = new Set<() => void>();

  constructor(registry: Registry, service: string, options?: WatchOptions) {
    this.handle = registry.watch(
      service,
      (update) => {
        this.updates.push(update);
        for (const wake of this.waiters) wake();
      },
      options,
    );
  }

  /** Ids of the latest successful update (undefined before the first one). */
  latestIds(): string[] | undefined {
    for (let i = this.updates.length - 1; i >= 0; i--) {
      const u = this.updates[i]!;
      if (u.ok) return u.instances.map((inst) => inst.id);
    }
    return undefined;
  }

  /** Resolves with the elapsed ms once `predicate(latestIds)` holds; rejects after `timeoutMs`. */
  until(predicate: (ids: string[]) => boolean, timeoutMs: number, what = 'condition'): Promise<number> {
    const started = Date.now();
    return new Promise((resolve, reject) => {
      const check = () => {
        const ids = this.latestIds();
        if (ids && predicate(ids)) {
          cleanup();
          resolve(Date.now() - started);
        }
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}; latest ids: ${JSON.stringify(this.latestIds())}`));
      }, timeoutMs);
      const cleanup = () => {
        clearTimeout(timer);
        this.waiters.delete(check);
      };
      this.waiters.add(check);
      check();
    });
  }

  close(): void {
    this.handle.close();
    this.waiters.clear();
  }
}
