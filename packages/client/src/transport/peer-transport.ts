import { isIP } from 'node:net';
import { Pool, type Dispatcher } from 'undici';
import { ClosedError } from '@peerlb/registry';
import type { ResolvedPoolOptions } from './pool-options.js';

/**
 * Builds the connection pool for one peer. Injected so tests (and users with special needs:
 * TLS, unix sockets, mocks) can swap the transport. The returned dispatcher must support
 * `request`, `dispatch`, `close` and `destroy` like an undici `Pool`.
 */
export type TransportFactory = (origin: string, options: ResolvedPoolOptions) => Dispatcher;

export const undiciPoolFactory: TransportFactory = (origin, options) =>
  new Pool(origin, {
    connections: options.connections,
    keepAliveTimeout: options.keepAliveTimeout,
    pipelining: options.pipelining,
    connectTimeout: options.connectTimeout,
  });

export function originOf(address: string, port: number): string {
  return isIP(address) === 6 ? `http://[${address}]:${port}` : `http://${address}:${port}`;
}

/**
 * The connection pool of one peer, created on first use so peers that are never picked cost no
 * socket, and retired gracefully when the peer leaves: in-flight requests finish, then the pool
 * is destroyed if it has not drained within the grace period.
 */
export class PeerTransport {
  private pool: Dispatcher | undefined;
  private retiring: Promise<void> | undefined;

  constructor(
    readonly origin: string,
    private readonly factory: TransportFactory,
    private readonly options: ResolvedPoolOptions,
  ) {}

  get created(): boolean {
    return this.pool !== undefined;
  }

  get retired(): boolean {
    return this.retiring !== undefined;
  }

  dispatcher(): Dispatcher {
    // PEERLB_CLOSED: classified as "nothing sent, not the peer's fault", so the call moves on.
    if (this.retiring !== undefined) throw new ClosedError(`transport to ${this.origin}`);
    this.pool ??= this.factory(this.origin, this.options);
    return this.pool;
  }

  /** Graceful close, then destroy after `graceMs`. Idempotent; resolves once the pool is gone. */
  retire(graceMs: number): Promise<void> {
    if (this.retiring) return this.retiring;
    const pool = this.pool;
    if (!pool) {
      this.retiring = Promise.resolve();
      return this.retiring;
    }
    this.retiring = new Promise<void>((resolve) => {
      let timer: NodeJS.Timeout | undefined;
      const finish = () => {
        if (timer) clearTimeout(timer);
        resolve();
      };
      timer = setTimeout(() => {
        timer = undefined;
        pool.destroy().then(finish, finish);
      }, graceMs);
      timer.unref();
      pool.close().then(finish, () => {
        // close() rejects when the pool was destroyed meanwhile; make sure nothing lingers.
        pool.destroy().then(finish, finish);
      });
    });
    return this.retiring;
  }
}
