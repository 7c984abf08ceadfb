import type { Registry, ServiceInstance, WatchHandle, WatchListener } from '@peerlb/registry';

/**
 * A registry whose watch updates the bench pushes by hand, synchronously: timing `push()` times
 * exactly what the client does with an update (diff, peers kept or created or retired, picker
 * rebuilt), with no registry work around it.
 */
export class PushRegistry implements Registry {
  readonly kind = 'push';
  private readonly listeners = new Set<WatchListener>();
  private current: readonly ServiceInstance[] = [];

  constructor(initial: readonly ServiceInstance[] = []) {
    this.current = initial;
  }

  /** Delivers `instances` to every watch now; returns how long the listeners took (ms). */
  push(instances: readonly ServiceInstance[]): number {
    this.current = instances;
    const started = performance.now();
    for (const listener of this.listeners) listener({ ok: true, instances, at: Date.now() });
    return performance.now() - started;
  }

  get watchers(): number {
    return this.listeners.size;
  }

  async register(): Promise<void> {
    throw new Error('PushRegistry: read-only');
  }

  async deregister(): Promise<void> {
    throw new Error('PushRegistry: read-only');
  }

  async heartbeat(): Promise<void> {
    throw new Error('PushRegistry: read-only');
  }

  async list(): Promise<ServiceInstance[]> {
    return [...this.current];
  }

  watch(_service: string, listener: WatchListener): WatchHandle {
    this.listeners.add(listener);
    const first = this.current;
    queueMicrotask(() => {
      if (this.listeners.has(listener)) listener({ ok: true, instances: first, at: Date.now() });
    });
    const close = () => {
      this.listeners.delete(listener);
    };
    return { close, [Symbol.dispose]: close };
  }

  async close(): Promise<void> {
    this.listeners.clear();
  }
}
