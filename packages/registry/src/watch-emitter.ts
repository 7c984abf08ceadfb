import type { ServiceInstance, WatchHandle, WatchListener } from './types.js';
import { sameInstances } from './validate.js';
import type { RegistryLogger } from './types.js';

/**
 * The delivery half of every adapter's watch: skips updates equal to the last one delivered
 * (a backend reply is not proof of change), isolates the listener's exceptions, and goes silent
 * once closed.
 */
export class WatchEmitter {
  private last: readonly ServiceInstance[] | undefined;
  private lastWasError = false;
  private closed = false;

  constructor(
    private readonly listener: WatchListener,
    private readonly logger: RegistryLogger,
    private readonly onClose: () => void = () => {},
  ) {}

  get isClosed(): boolean {
    return this.closed;
  }

  instances(instances: readonly ServiceInstance[]): void {
    if (this.closed) return;
    if (!this.lastWasError && this.last && sameInstances(this.last, instances)) return;
    this.last = instances;
    this.lastWasError = false;
    this.deliver({ ok: true, instances, at: Date.now() });
  }

  error(error: Error): void {
    if (this.closed) return;
    this.lastWasError = true;
    this.deliver({ ok: false, error, at: Date.now() });
  }

  handle(): WatchHandle {
    const close = () => this.close();
    return { close, [Symbol.dispose]: close };
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.onClose();
  }

  private deliver(update: Parameters<WatchListener>[0]): void {
    try {
      this.listener(update);
    } catch (err) {
      this.logger.warn(`watch listener threw: ${(err as Error)?.message ?? String(err)}`);
    }
  }
}
