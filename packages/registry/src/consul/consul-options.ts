import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import type { BackoffOptions } from '../backoff.js';
import { InvalidOptionsError } from '../errors.js';
import { consoleLogger } from '../logger.js';
import type { RegistryLogger } from '../types.js';
import { validateDurationMs } from '../validate.js';

export interface ConsulRegistryOptions {
  /**
   * `http://host:port`, `https://host:port` or `host:port` (a missing port means the scheme's
   * default, as in Consul's own Go client). Default: env `CONSUL_HTTP_ADDR`, else
   * `http://127.0.0.1:8500`. With `CONSUL_HTTP_SSL=true` a scheme-less address means https.
   */
  address?: string;
  /** ACL token, sent as `X-Consul-Token` on every call. Default: env `CONSUL_HTTP_TOKEN`. Never logged. */
  token?: string;
  /** PEM text of the CA that signed the agent's certificate. Default: the file named by env `CONSUL_CACERT`. */
  caCert?: string | Buffer;
  /** Datacenter to discover in (default: the agent's own). */
  datacenter?: string;
  /** How long a blocking query may wait for a change (default 60 s, at most 10 min). */
  waitMs?: number;
  /** Least time between the starts of two queries of one watch, so churn cannot spin the loop (default 100 ms). */
  minWatchIntervalMs?: number;
  /** Retry delays after a failed watch query: full jitter (default 250 ms doubling to 10 s). */
  backoff?: BackoffOptions;
  /** Time limit of every call that is not a blocking query (default 10 s). */
  requestTimeoutMs?: number;
  /** Where dropped entries and watch trouble are reported (default: console). */
  logger?: RegistryLogger;
  /** Environment to read `CONSUL_*` from (default `process.env`). */
  env?: NodeJS.ProcessEnv;
}

export interface ConsulEndpoint {
  secure: boolean;
  /** Host as it appears in a URL: IPv6 literals keep their brackets. */
  host: string;
  port: number;
  /** `scheme://host:port`, for messages. */
  origin: string;
}

export interface ResolvedConsulOptions {
  endpoint: ConsulEndpoint;
  token: string | undefined;
  caCert: string | Buffer | undefined;
  datacenter: string | undefined;
  waitMs: number;
  minWatchIntervalMs: number;
  backoff: { minMs: number; maxMs: number };
  requestTimeoutMs: number;
  logger: RegistryLogger;
}

const DEFAULT_ADDRESS = 'http://127.0.0.1:8500';
const MAX_WAIT_MS = 600_000;
// Visible ASCII only: a token ends up in an HTTP header, and anything else would be rejected there
// with an error that might echo it.
const TOKEN_CHARS = /^[\x21-\x7e]+$/;
const DATACENTER = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;

/** Validates options, fills in the environment and defaults. Errors name the field, never the token. */
export function resolveConsulOptions(options: ConsulRegistryOptions = {}): ResolvedConsulOptions {
  if (options === null || typeof options !== 'object') throw new InvalidOptionsError('options', 'must be an object');
  const env = options.env ?? process.env;
  if (env === null || typeof env !== 'object') throw new InvalidOptionsError('env', 'must be an object');

  const endpoint = resolveEndpoint(options.address, env);
  const token = resolveToken(options.token, env);
  const caCert = resolveCaCert(options.caCert, env);

  let datacenter: string | undefined;
  if (options.datacenter !== undefined) {
    if (typeof options.datacenter !== 'string' || !DATACENTER.test(options.datacenter)) {
      throw new InvalidOptionsError('datacenter', 'must be 1..128 letters, digits, _ . or -');
    }
    datacenter = options.datacenter;
  }

  const waitMs = options.waitMs === undefined ? 60_000 : validateDurationMs(options.waitMs, 'waitMs');
  if (waitMs > MAX_WAIT_MS) throw new InvalidOptionsError('waitMs', `at most ${MAX_WAIT_MS} (Consul's 10 min limit), got ${waitMs}`);

  let minWatchIntervalMs = 100;
  if (options.minWatchIntervalMs !== undefined) {
    const v = options.minWatchIntervalMs;
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0 || v > 2 ** 31 - 1) {
      throw new InvalidOptionsError('minWatchIntervalMs', 'must be a number of milliseconds >= 0');
    }
    minWatchIntervalMs = v;
  }

  const backoff = { minMs: 250, maxMs: 10_000 };
  if (options.backoff !== undefined) {
    if (options.backoff === null || typeof options.backoff !== 'object') {
      throw new InvalidOptionsError('backoff', 'must be an object');
    }
    if (options.backoff.minMs !== undefined) backoff.minMs = validateDurationMs(options.backoff.minMs, 'backoff.minMs');
    if (options.backoff.maxMs !== undefined) backoff.maxMs = validateDurationMs(options.backoff.maxMs, 'backoff.maxMs');
    if (backoff.maxMs < backoff.minMs) {
      throw new InvalidOptionsError('backoff.maxMs', `must be >= backoff.minMs (${backoff.minMs}), got ${backoff.maxMs}`);
    }
  }

  const requestTimeoutMs =
    options.requestTimeoutMs === undefined ? 10_000 : validateDurationMs(options.requestTimeoutMs, 'requestTimeoutMs');

  const logger = options.logger ?? consoleLogger;
  if (logger === null || typeof logger !== 'object' || typeof logger.warn !== 'function') {
    throw new InvalidOptionsError('logger', 'must have a warn(message, details) method');
  }

  return { endpoint, token, caCert, datacenter, waitMs, minWatchIntervalMs, backoff, requestTimeoutMs, logger };
}

function resolveEndpoint(option: string | undefined, env: NodeJS.ProcessEnv): ConsulEndpoint {
  let raw: string;
  let source: string;
  if (option !== undefined) {
    if (typeof option !== 'string' || option.trim() === '') throw new InvalidOptionsError('address', 'must be a non-empty string');
    raw = option.trim();
    source = 'address';
  } else if (nonEmpty(env.CONSUL_HTTP_ADDR)) {
    raw = env.CONSUL_HTTP_ADDR.trim();
    source = 'CONSUL_HTTP_ADDR';
  } else {
    raw = DEFAULT_ADDRESS;
    source = 'default';
  }

  let withScheme = raw;
  const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//.exec(raw)?.[1]?.toLowerCase();
  if (scheme === undefined) {
    withScheme = `${parseSslFlag(env.CONSUL_HTTP_SSL) ? 'https' : 'http'}://${raw}`;
  } else if (scheme !== 'http' && scheme !== 'https') {
    throw new InvalidOptionsError('address', `${from(source)}scheme must be http or https, got ${scheme}`);
  }

  let url: URL;
  try {
    url = new URL(withScheme);
  } catch {
    throw new InvalidOptionsError('address', `${from(source)}not a valid host:port or URL`);
  }
  // Credentials in the address would end up in messages; Consul authenticates by token anyway.
  if (url.username !== '' || url.password !== '') {
    throw new InvalidOptionsError('address', `${from(source)}must not hold credentials; use the token option`);
  }
  if ((url.pathname !== '/' && url.pathname !== '') || url.search !== '' || url.hash !== '') {
    throw new InvalidOptionsError('address', `${from(source)}must be scheme://host:port without a path or query`);
  }
  const secure = url.protocol === 'https:';
  const port = url.port === '' ? (secure ? 443 : 80) : Number(url.port);
  const host = url.hostname;
  if (host === '') throw new InvalidOptionsError('address', `${from(source)}has no host`);
  return { secure, host, port, origin: `${secure ? 'https' : 'http'}://${host}:${port}` };
}

function resolveToken(option: string | undefined, env: NodeJS.ProcessEnv): string | undefined {
  const [value, source] = option !== undefined ? [option, 'token'] : [env.CONSUL_HTTP_TOKEN, 'CONSUL_HTTP_TOKEN'];
  if (value === undefined || (source === 'CONSUL_HTTP_TOKEN' && value === '')) return undefined;
  // The message describes the problem only: a token, even a malformed one, must never be echoed.
  if (typeof value !== 'string' || !TOKEN_CHARS.test(value)) {
    throw new InvalidOptionsError('token', `${from(source)}must be a non-empty string of visible ASCII characters`);
  }
  return value;
}

function resolveCaCert(option: string | Buffer | undefined, env: NodeJS.ProcessEnv): string | Buffer | undefined {
  let pem: string | Buffer;
  let source = 'caCert';
  if (option !== undefined) {
    if (typeof option !== 'string' && !Buffer.isBuffer(option)) {
      throw new InvalidOptionsError('caCert', 'must be PEM text (a string or Buffer)');
    }
    pem = option;
  } else if (nonEmpty(env.CONSUL_CACERT)) {
    source = 'CONSUL_CACERT';
    try {
      pem = readFileSync(env.CONSUL_CACERT);
    } catch (cause) {
      const code = (cause as NodeJS.ErrnoException).code ?? 'error';
      throw new InvalidOptionsError('caCert', `cannot read the CA file named by CONSUL_CACERT (${env.CONSUL_CACERT}): ${code}`, {
        cause,
      });
    }
  } else {
    return undefined;
  }
  const text = typeof pem === 'string' ? pem : pem.toString('latin1');
  if (!text.includes('-----BEGIN CERTIFICATE-----')) {
    throw new InvalidOptionsError(
      'caCert',
      `${from(source)}holds no PEM certificate (pass the certificate text, not a file path)`,
    );
  }
  return pem;
}

/** Go's strconv.ParseBool, which is what Consul's own client applies to CONSUL_HTTP_SSL. */
function parseSslFlag(value: string | undefined): boolean {
  if (value === undefined || value === '') return false;
  if (['1', 't', 'T', 'TRUE', 'true', 'True'].includes(value)) return true;
  if (['0', 'f', 'F', 'FALSE', 'false', 'False'].includes(value)) return false;
  throw new InvalidOptionsError('address', `CONSUL_HTTP_SSL must be true or false, got ${JSON.stringify(value.slice(0, 20))}`);
}

function nonEmpty(value: string | undefined): value is string {
  return typeof value === 'string' && value.trim() !== '';
}

function from(source: string): string {
  return source === 'address' || source === 'caCert' || source === 'token' ? '' : `(from ${source}) `;
}

/** True for a bracketed or bare IPv6 literal. */
export function isIpv6Host(host: string): boolean {
  return isIP(host.replace(/^\[|\]$/g, '')) === 6;
}
