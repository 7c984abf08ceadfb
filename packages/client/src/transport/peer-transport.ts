import { isIP } from 'node:net';
import { Pool, type Dispatcher } from 'undici';
import { ClosedError, schemeOf, type ServiceInstance } from '@peerlb/registry';
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
    // Only an https origin has a TLS handshake to configure.
    ...(options.peerTls !== undefined && origin.startsWith('https:') ? { connect: { ...options.peerTls } } : {}),
  });

/** `scheme://address:port`, the scheme from the instance's `meta.scheme` (validated: http or https). */
export function originOf(address: string, port: number, scheme: 'http' | 'https' = 'http'): string {
  return isIP(address) === 6 ? `${scheme}://[${address}]:${port}` : `${scheme}://${address}:${port}`;
}

/**
 * The connection pool of one peer, created on first use so peers that are never picked cost no
 * socket, and retired gracefully when the peer leaves: in-flight requests finish, then the pool
 * is destroyed if it has not drained within the grace period.
 */
export class PeerTransport {
  private pool: Dispatcher | undefined;
  private retiring: Promise<void> | undefined;
  /** Pools swapped out after a refusal (see `replaceAfterRefusal`), still closing. Made on the first. */
  private replaced: Set<Promise<void>> | undefined;

  #origin: string | undefined;

  constructor(
    /** Where to connect: address, port and `meta.scheme` (read when the origin is first needed). */
    private readonly endpoint: ServiceInstance,
    private readonly factory: TransportFactory,
    private readonly options: ResolvedPoolOptions,
  ) {}

  /** `scheme://address:port`, built on first use: most peers of a large service are never called. */
  get origin(): string {
    return (this.#origin ??= originOf(this.endpoint.address, this.endpoint.port, schemeOf(this.endpoint)));
  }

  get created(): boolean {
    return this.pool !== undefined;
  }

  /** No pool was ever made and none is closing: retiring it has nothing to wait for. */
  get idle(): boolean {
    return this.pool === undefined && (this.replaced === undefined || this.replaced.size === 0);
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

  /**
   * Call when the pool refused a request's arguments. An undici 7 Pool that refuses a request
   * (InvalidArgumentError or NotSupportedError from its Request: a forbidden header, a bad body)
   * leaves the client it handed the request to waiting for a 'drain' that never comes; once every
   * client slot is lost that way, every later request to the peer queues forever. So the pool is
   * swapped for a fresh one at the next request, and the old one closes like a retired one.
   */
  replaceAfterRefusal(error: unknown, graceMs: number): void {
    const code = (error as { code?: unknown } | null)?.code;
    if (code !== 'UND_ERR_INVALID_ARG' && code !== 'UND_ERR_NOT_SUPPORTED') return;
    const pool = this.pool;
    if (pool === undefined || this.retiring !== undefined) return;
    this.pool = undefined;
    const closing = closeThenDestroy(pool, graceMs);
    const replaced = (this.replaced ??= new Set());
    replaced.add(closing);
    void closing.then(() => replaced.delete(closing));
  }

  /** Graceful close, then destroy after `graceMs`. Idempotent; resolves once the pool is gone. */
  retire(graceMs: number): Promise<void> {
    if (this.retiring) return this.retiring;
    const pool = this.pool;
    if (this.idle) {
      this.retiring = RETIRED;
      return RETIRED;
    }
    const replaced = this.replaced === undefined ? [] : [...this.replaced];
    this.retiring = Promise.all([...replaced, pool ? closeThenDestroy(pool, graceMs) : undefined]).then(() => {});
    return this.retiring;
  }
}

const RETIRED: Promise<void> = Promise.resolve();

/** Closes `pool` gracefully (in-flight requests finish), destroying it if that takes longer than `graceMs`. */
function closeThenDestroy(pool: Dispatcher, graceMs: number): Promise<void> {
  return new Promise<void>((resolve) => {
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
}
