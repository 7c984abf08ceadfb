import type { Registry, ServiceInstance, WatchHandle, WatchListener, WatchUpdate } from '@peerlb/registry';

/**
 * A registry the test drives by hand: `push` delivers an update to every open watch, exactly as
 * given (no dedupe), so tests can play outages, empty answers and recoveries. Counts calls.
 */
export class ScriptedRegistry implements Registry {
  readonly kind = 'scripted';
  watchCalls = 0;
  listCalls = 0;
  private readonly listeners = new Map<WatchListener, string>();

  async register(): Promise<void> {}
  async deregister(): Promise<void> {}
  async heartbeat(): Promise<void> {}

  async list(): Promise<ServiceInstance[]> {
    this.listCalls++;
    return [];
  }

  watch(service: string, listener: WatchListener): WatchHandle {
    this.watchCalls++;
    this.listeners.set(listener, service);
    const close = () => {
      this.listeners.delete(listener);
    };
    return { close, [Symbol.dispose]: close };
  }

  get openWatches(): number {
    return this.listeners.size;
  }

  instances(service: string, instances: readonly ServiceInstance[]): void {
    this.push(service, { ok: true, instances, at: Date.now() });
  }

  fail(service: string, message = 'registry down'): void {
    this.push(service, { ok: false, error: new Error(message), at: Date.now() });
  }

  push(service: string, update: WatchUpdate): void {
    for (const [listener, s] of [...this.listeners]) if (s === service) listener(update);
  }

  async close(): Promise<void> {
    this.listeners.clear();
  }
}

export function inst(id: string, port: number, service = 'api'): ServiceInstance {
  return { id, service, address: '127.0.0.1', port, tags: [], meta: {} };
}
