import { durationOption, InvalidOptionsError } from '@peerlb/registry';

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
  /** TLS for peers registered with `meta.scheme: 'https'` (default: Node's trusted CAs, certificate checked). */
  tls?: PeerTlsOptions;
}

/** What the TLS handshake with an https peer uses; passed to undici's `connect` options. */
export interface PeerTlsOptions {
  /** CA certificates (PEM) trusted for peers' certificates, instead of Node's default list. */
  ca?: string | Buffer | Array<string | Buffer>;
  /** Client certificate and key (PEM), for peers that ask for one (mutual TLS). */
  cert?: string | Buffer | Array<string | Buffer>;
  key?: string | Buffer | Array<string | Buffer>;
  /** Name checked against the peer's certificate (default: its registered address). */
  servername?: string;
  /** Default true. `false` accepts any certificate: for tests only. */
  rejectUnauthorized?: boolean;
}

export interface ResolvedPoolOptions {
  readonly connections: number | null;
  readonly keepAliveTimeout: number;
  readonly pipelining: number;
  readonly connectTimeout: number;
  /** `tls` of `PoolOptions` (named apart from undici's deprecated `tls` option, so these stay Pool options). */
  readonly peerTls: Readonly<PeerTlsOptions> | undefined;
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
    keepAliveTimeout: durationOption(`${field}.keepAliveTimeout`, options.keepAliveTimeout, 4000),
    connectTimeout: durationOption(`${field}.connectTimeout`, options.connectTimeout, 10_000),
    peerTls: resolveTls(options.tls, `${field}.tls`),
  });
}

function resolveTls(tls: PeerTlsOptions | undefined, field: string): Readonly<PeerTlsOptions> | undefined {
  if (tls === undefined) return undefined;
  if (tls === null || typeof tls !== 'object') throw new InvalidOptionsError(field, 'must be an object');
  const isPem = (v: unknown) => typeof v === 'string' || Buffer.isBuffer(v);
  const out: PeerTlsOptions = {};
  for (const key of ['ca', 'cert', 'key'] as const) {
    const value = tls[key];
    if (value === undefined) continue;
    if (!isPem(value) && !(Array.isArray(value) && value.every(isPem))) {
      throw new InvalidOptionsError(`${field}.${key}`, 'must be PEM text (a string or Buffer) or an array of them');
    }
    out[key] = value;
  }
  if (tls.servername !== undefined) {
    if (typeof tls.servername !== 'string' || tls.servername === '') throw new InvalidOptionsError(`${field}.servername`, 'must be a non-empty string');
    out.servername = tls.servername;
  }
  if (tls.rejectUnauthorized !== undefined) {
    if (typeof tls.rejectUnauthorized !== 'boolean') throw new InvalidOptionsError(`${field}.rejectUnauthorized`, 'must be a boolean');
    out.rejectUnauthorized = tls.rejectUnauthorized;
  }
  return Object.freeze(out);
}
