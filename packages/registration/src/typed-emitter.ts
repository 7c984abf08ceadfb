import type { RegistryLogger } from '@peerlb/registry';

type Listener<Args extends unknown[]> = (...args: Args) => void;

/**
 * A small typed event emitter. Unlike `node:events` it isolates listeners: one that throws is
 * reported through the logger and the others still run, and an `error` event with no listener is
 * logged instead of crashing the process (a registry hiccup must never take a service down).
 */
export class TypedEmitter<Events extends { [K in keyof Events]: unknown[] }> {
  private readonly listeners = new Map<keyof Events, Set<Listener<never>>>();
  private readonly onceWrappers = new WeakMap<Listener<never>, Listener<never>>();

  constructor(private readonly logger: RegistryLogger) {}

  on<K extends keyof Events>(event: K, listener: Listener<Events[K]>): this {
    let set = this.listeners.get(event);
    if (!set) {
      set = new Set();
      this.listeners.set(event, set);
    }
    set.add(listener as Listener<never>);
    return this;
  }

  once<K extends keyof Events>(event: K, listener: Listener<Events[K]>): this {
    const wrapped: Listener<Events[K]> = (...args) => {
      this.off(event, wrapped);
      listener(...args);
    };
    // So that off(event, listener) also removes a listener added with once().
    this.onceWrappers.set(listener as Listener<never>, wrapped as Listener<never>);
    return this.on(event, wrapped);
  }

  off<K extends keyof Events>(event: K, listener: Listener<Events[K]>): this {
    const set = this.listeners.get(event);
    set?.delete(listener as Listener<never>);
    const wrapped = this.onceWrappers.get(listener as Listener<never>);
    if (wrapped) set?.delete(wrapped);
    return this;
  }

  listenerCount(event: keyof Events): number {
    return this.listeners.get(event)?.size ?? 0;
  }

  emit<K extends keyof Events>(event: K, ...args: Events[K]): void {
    const set = this.listeners.get(event);
    if (!set || set.size === 0) {
      if (event === 'error') {
        const err = args[0] as Error | undefined;
        this.logger.warn(`registration error: ${err?.message ?? String(err)}`);
      }
      return;
    }
    for (const listener of [...set]) {
      try {
        (listener as Listener<Events[K]>)(...args);
      } catch (err) {
        this.logger.warn(`listener for "${String(event)}" threw: ${(err as Error)?.message ?? String(err)}`);
      }
    }
  }

  removeAllListeners(): void {
    this.listeners.clear();
  }
}
