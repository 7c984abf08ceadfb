import { InvalidOptionsError, validateDurationMs } from '@peerlb/registry';

/** Connection options for the undici `Pool` of each peer. */
export interface PoolOptions {
  /** Most sockets to one peer (default 32; `null` = unbounded, undici's own default). */
  connections?: number | null;
  /** Idle keep-alive sockets close after this long (default 4000 ms, undici's default). */
  keepAliveTimeout?: number;
  /** Requests in flight per socket (default 1: no HTTP/1.1 pipelining). */
  pipelining?: number;
  /** TCP connect timeout (default 10 000 ms). The call's deadline still applies on top. */
  connectTimeout?: number;
}

export interface ResolvedPoolOptions {
  readonly connections: number | null;
  readonly keepAliveTimeout: number;
  readonly pipelining: number;
  readonly connectTimeout: number;
}

export function resolvePoolOptions(options: PoolOptions | undefined, field = 'pool'): ResolvedPoolOptions {
  if (options === undefined) options = {};
  if (options === null || typeof options !== 'object') throw new InvalidOptionsError(field, 'must be an object');
  const connections = options.connections === undefined ? 32 : options.connections;
  if (connections !== null && !(Number.isInteger(connections) && connections >= 1)) {
    throw new InvalidOptionsError(`${field}.connections`, 'must be a positive integer or null');
  }
  const pipelining = options.pipelining ?? 1;
  if (!Number.isInteger(pipelining) || pipelining < 0) {
    throw new InvalidOptionsError(`${field}.pipelining`, 'must be an integer >= 0');
  }
  return Object.freeze({
    connections,
    pipelining,
    keepAliveTimeout: validateDurationMs(options.keepAliveTimeout ?? 4000, `${field}.keepAliveTimeout`),
    connectTimeout: validateDurationMs(options.connectTimeout ?? 10_000, `${field}.connectTimeout`),
  });
}
