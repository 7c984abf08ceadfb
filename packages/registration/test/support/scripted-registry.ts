import {
  MemoryRegistry,
  RegistryUnavailableError,
  silentLogger,
  type CallOptions,
  type HealthCheckSpec,
  type HeartbeatOptions,
  type ListOptions,
  type Registry,
  type ServiceInstance,
  type ServiceInstanceInput,
  type WatchHandle,
  type WatchListener,
  type WatchOptions,
} from '@peerlb/registry';

export type Call =
  | { op: 'register'; id: string; check: HealthCheckSpec }
  | { op: 'deregister'; id: string }
  | { op: 'heartbeat'; id: string; status: string | undefined; note: string | undefined };

/**
 * A MemoryRegistry with a script: calls are logged, and the next N calls of a kind can be made to
 * fail (or hang until aborted), so the registration's retry and recovery paths are exercised.
 */
export class ScriptedRegistry implements Registry {
  readonly kind = 'scripted';
  readonly memory = new MemoryRegistry({ logger: silentLogger });
  readonly calls: Call[] = [];
  failRegister = 0;
  failHeartbeat = 0;
  failDeregister = 0;
  hangRegister = 0;
  /** Registers, then forgets at once, as a registry restarting right after the call would. */
  forgetAfterRegister = 0;
  /** Deregister calls that never settle and ignore their signal. */
  hangDeregister = 0;
  /** Error thrown by scripted register failures (default: registry unavailable). */
  registerError: () => Error = () => new RegistryUnavailableError('scripted outage');
  closed = false;

  async register(instance: ServiceInstanceInput, check: HealthCheckSpec, options?: CallOptions): Promise<void> {
    this.calls.push({ op: 'register', id: instance.id, check });
    if (this.hangRegister > 0) {
      this.hangRegister--;
      // Registers, then never answers: the caller can only give up through its signal.
      await this.memory.register(instance, check);
      await new Promise<void>((_, reject) => {
        options?.signal?.addEventListener('abort', () => reject(new Error('aborted')), { once: true });
      });
    }
    if (this.failRegister > 0) {
      this.failRegister--;
      throw this.registerError();
    }
    await this.memory.register(instance, check, options);
    if (this.forgetAfterRegister > 0) {
      this.forgetAfterRegister--;
      await this.memory.deregister(instance.id);
    }
  }

  async deregister(id: string, options?: CallOptions): Promise<void> {
    this.calls.push({ op: 'deregister', id });
    if (this.hangDeregister > 0) {
      this.hangDeregister--;
      return new Promise<void>(() => {});
    }
    if (this.failDeregister > 0) {
      this.failDeregister--;
      throw new RegistryUnavailableError('scripted outage');
    }
    await this.memory.deregister(id, options);
  }

  async heartbeat(id: string, options?: HeartbeatOptions): Promise<void> {
    this.calls.push({ op: 'heartbeat', id, status: options?.status, note: options?.note });
    if (this.failHeartbeat > 0) {
      this.failHeartbeat--;
      throw new RegistryUnavailableError('scripted outage');
    }
    await this.memory.heartbeat(id, options);
  }

  list(service: string, options?: ListOptions): Promise<ServiceInstance[]> {
    return this.memory.list(service, options);
  }

  watch(service: string, listener: WatchListener, options?: WatchOptions): WatchHandle {
    return this.memory.watch(service, listener, options);
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.memory.close();
  }

  count(op: Call['op']): number {
    return this.calls.filter((c) => c.op === op).length;
  }
}

/** Polls `condition` every 20 ms until it holds or `timeoutMs` passes. */
export async function waitFor(condition: () => boolean | Promise<boolean>, timeoutMs = 5_000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await condition()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
