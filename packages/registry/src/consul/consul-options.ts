import { readdirSync, readFileSync, type Dirent } from 'node:fs';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { createSecureContext } from 'node:tls';
import type { BackoffOptions } from '../backoff.js';
import { InvalidOptionsError } from '../errors.js';
import { consoleLogger } from '../logger.js';
import type { RegistryLogger } from '../types.js';
import { isValidAddress } from '../validate.js';
import { durationOption, requiredDurationOption } from '../options.js';

export interface ConsulRegistryOptions {
  /**
   * `http://host:port`, `https://host:port` or `host:port` (a missing port means the scheme's
   * default, as in Consul's own Go client). Default: env `CONSUL_HTTP_ADDR`, else
   * `http://127.0.0.1:8500`. With `CONSUL_HTTP_SSL=true` a scheme-less address means https.
   */
  address?: string;
  /** ACL token, sent as `X-Consul-Token` on every call. Default: env `CONSUL_HTTP_TOKEN`. Never logged. */
  token?: string;
  /**
   * PEM text of the CA that signed the agent's certificate. Default: the file named by env
   * `CONSUL_CACERT`. Wins over `caPath` / `CONSUL_CAPATH`, as in Consul.
   */
  caCert?: string | Buffer;
  /**
   * A directory of PEM CA files to trust, read (with its subdirectories) at construction, as
   * Consul's `-ca-path`: every file in it must hold a certificate. Default: env `CONSUL_CAPATH`.
   * Any CA option (`caCert`, `caPath`) overrides both CA variables.
   */
  caPath?: string;
  /**
   * PEM text of the certificate this client presents to an agent that verifies incoming HTTPS
   * (mutual TLS). Default: the file named by env `CONSUL_CLIENT_CERT`. Needs `clientKey`.
   */
  clientCert?: string | Buffer;
  /**
   * PEM text of the unencrypted private key of `clientCert`. Default: the file named by env
   * `CONSUL_CLIENT_KEY`. Needs `clientCert`. Never logged, never in an error.
   */
  clientKey?: string | Buffer;
  /**
   * The name sent as SNI and checked against the agent's certificate instead of the address's
   * host (a port is dropped, as Consul's client does). Default: env `CONSUL_TLS_SERVER_NAME`.
   */
  tlsServerName?: string;
  /**
   * `false` skips verifying the agent's certificate (chain and name), as
   * `CONSUL_HTTP_SSL_VERIFY=false` does; a warning is logged. Default: env
   * `CONSUL_HTTP_SSL_VERIFY`, else true.
   */
  tlsVerify?: boolean;
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
  /**
   * The largest answer body read from the agent, in bytes (default 32 MiB, about 15,000 healthy
   * instances of one service). A larger answer fails that read; a watch keeps its last good list.
   */
  maxResponseBytes?: number;
  /**
   * The smallest `deregisterCriticalAfterMs` sent to the agent; smaller values are raised to it,
   * with a warning. Default 60 s: a real agent raises anything below 1 minute to 1 minute and
   * reaps every 30 s, so an instance critical for 1 minute is removed 60 to 90 s after it failed.
   * Only a test double honours less.
   */
  minDeregisterCriticalAfterMs?: number;
  /**
   * Whether `register()` waits until the catalog shows the instance (default true): an agent
   * accepts a registration even when it reaches no Consul server, and nobody can discover the
   * instance until the agent syncs it. Off, `register()` resolves once the agent accepted it.
   */
  confirmRegistration?: boolean;
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

/** What the https agent is built with. `key` is a secret, like the token. */
export interface ConsulTlsConfig {
  /** CAs to trust instead of Node's bundled ones; undefined: Node's. */
  ca: Array<string | Buffer> | undefined;
  /** Client certificate and key, both or neither. */
  cert: string | Buffer | undefined;
  key: string | Buffer | undefined;
  /** Host name or IP literal the agent's certificate must name; undefined: the address's host. */
  serverName: string | undefined;
  verify: boolean;
}

export interface ResolvedConsulOptions {
  endpoint: ConsulEndpoint;
  token: string | undefined;
  tls: ConsulTlsConfig;
  datacenter: string | undefined;
  waitMs: number;
  minWatchIntervalMs: number;
  backoff: { minMs: number; maxMs: number };
  requestTimeoutMs: number;
  maxResponseBytes: number;
  minDeregisterCriticalAfterMs: number;
  confirmRegistration: boolean;
  logger: RegistryLogger;
}

const DEFAULT_ADDRESS = 'http://127.0.0.1:8500';
const MAX_WAIT_MS = 600_000;
const DEFAULT_MAX_RESPONSE_BYTES = 32 * 1024 * 1024;
/** What a real agent enforces: DeregisterCriticalServiceAfter below 1 minute is raised to 1 minute. */
export const CONSUL_MIN_DEREGISTER_CRITICAL_AFTER_MS = 60_000;
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
  const tls = resolveTls(options, env);

  let datacenter: string | undefined;
  if (options.datacenter !== undefined) {
    if (typeof options.datacenter !== 'string' || !DATACENTER.test(options.datacenter)) {
      throw new InvalidOptionsError('datacenter', 'must be 1..128 letters, digits, _ . or -');
    }
    datacenter = options.datacenter;
  }

  const waitMs = durationOption('waitMs', options.waitMs, 60_000);
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
    if (options.backoff.minMs !== undefined) backoff.minMs = requiredDurationOption('backoff.minMs', options.backoff.minMs);
    if (options.backoff.maxMs !== undefined) backoff.maxMs = requiredDurationOption('backoff.maxMs', options.backoff.maxMs);
    if (backoff.maxMs < backoff.minMs) {
      throw new InvalidOptionsError('backoff.maxMs', `must be >= backoff.minMs (${backoff.minMs}), got ${backoff.maxMs}`);
    }
  }

  const requestTimeoutMs =
    durationOption('requestTimeoutMs', options.requestTimeoutMs, 10_000);

  let maxResponseBytes = DEFAULT_MAX_RESPONSE_BYTES;
  if (options.maxResponseBytes !== undefined) {
    const v = options.maxResponseBytes;
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 1024) {
      throw new InvalidOptionsError('maxResponseBytes', `must be a whole number of bytes >= 1024, got ${String(v)}`);
    }
    maxResponseBytes = v;
  }

  let minDeregisterCriticalAfterMs = CONSUL_MIN_DEREGISTER_CRITICAL_AFTER_MS;
  if (options.minDeregisterCriticalAfterMs !== undefined) {
    const v = options.minDeregisterCriticalAfterMs;
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0 || v > 2 ** 31 - 1) {
      throw new InvalidOptionsError('minDeregisterCriticalAfterMs', 'must be a number of milliseconds >= 0');
    }
    minDeregisterCriticalAfterMs = v;
  }

  const confirmRegistration = options.confirmRegistration ?? true;
  if (typeof confirmRegistration !== 'boolean') throw new InvalidOptionsError('confirmRegistration', 'must be true or false');

  const logger = options.logger ?? consoleLogger;
  if (logger === null || typeof logger !== 'object' || typeof logger.warn !== 'function') {
    throw new InvalidOptionsError('logger', 'must have a warn(message, details) method');
  }

  return {
    endpoint,
    token,
    tls,
    datacenter,
    waitMs,
    minWatchIntervalMs,
    backoff,
    requestTimeoutMs,
    maxResponseBytes,
    minDeregisterCriticalAfterMs,
    confirmRegistration,
    logger,
  };
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
    withScheme = `${parseGoBool(env.CONSUL_HTTP_SSL, 'address', 'CONSUL_HTTP_SSL', false) ? 'https' : 'http'}://${raw}`;
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

const CERTIFICATE = /-----BEGIN CERTIFICATE-----/;
const PRIVATE_KEY = /-----BEGIN (?:[A-Z]+ )?PRIVATE KEY-----/;

function resolveTls(options: ConsulRegistryOptions, env: NodeJS.ProcessEnv): ConsulTlsConfig {
  const cert = pemSetting('clientCert', options.clientCert, 'CONSUL_CLIENT_CERT', env, 'client certificate');
  const key = pemSetting('clientKey', options.clientKey, 'CONSUL_CLIENT_KEY', env, 'client key');
  // Both or neither, as Consul's client demands: a certificate without its key cannot be presented.
  if (cert !== undefined && key === undefined) {
    throw new InvalidOptionsError('clientKey', `missing: ${cert.source} gives a client certificate, so clientKey or CONSUL_CLIENT_KEY must give its key`);
  }
  if (key !== undefined && cert === undefined) {
    throw new InvalidOptionsError('clientCert', `missing: ${key.source} gives a client key, so clientCert or CONSUL_CLIENT_CERT must give its certificate`);
  }
  if (cert !== undefined && key !== undefined) {
    requirePem('clientCert', cert, 'certificate');
    requirePem('clientKey', key, 'private key');
    checkKeyPair(cert, key);
  }
  return {
    ca: resolveCa(options, env),
    cert: cert?.pem,
    key: key?.pem,
    serverName: resolveServerName(options.tlsServerName, env),
    verify: resolveVerify(options.tlsVerify, env),
  };
}

/** A PEM setting and where it came from: an option (PEM text) or the file an env variable names. */
interface Pem {
  pem: string | Buffer;
  source: string;
}

function pemSetting(
  field: string,
  option: string | Buffer | undefined,
  envName: string,
  env: NodeJS.ProcessEnv,
  what: string,
): Pem | undefined {
  if (option !== undefined) {
    if (typeof option !== 'string' && !Buffer.isBuffer(option)) {
      throw new InvalidOptionsError(field, 'must be PEM text (a string or Buffer)');
    }
    return { pem: option, source: field };
  }
  const path = env[envName];
  if (!nonEmpty(path)) return undefined;
  return { pem: readSettingFile(field, envName, path, `${what} file`), source: envName };
}

/**
 * The CAs to trust. Options win over the environment (any CA option hides both CA variables);
 * within each, a CA file wins over a CA directory, the order of Consul's client (go-rootcerts).
 */
function resolveCa(options: ConsulRegistryOptions, env: NodeJS.ProcessEnv): Array<string | Buffer> | undefined {
  const byOption = options.caCert !== undefined || options.caPath !== undefined;
  const ca = pemSetting('caCert', options.caCert, 'CONSUL_CACERT', byOption ? {} : env, 'CA certificate');
  if (ca !== undefined) {
    requirePem('caCert', ca, 'certificate');
    return [ca.pem];
  }
  if (options.caPath !== undefined) {
    if (typeof options.caPath !== 'string' || options.caPath.trim() === '') {
      throw new InvalidOptionsError('caPath', 'must be the path of a directory of PEM CA files');
    }
    return readCaDirectory(options.caPath, 'caPath');
  }
  return nonEmpty(env.CONSUL_CAPATH) ? readCaDirectory(env.CONSUL_CAPATH, 'CONSUL_CAPATH') : undefined;
}

/**
 * Every file below `dir`, subdirectories included, each of which must hold a PEM certificate: what
 * go-rootcerts' LoadCAPath (Consul's `-ca-path`) accepts. An empty directory is refused here rather
 * than leaving a client that trusts nothing.
 */
function readCaDirectory(dir: string, source: string): Buffer[] {
  const found: Buffer[] = [];
  const walk = (path: string) => {
    let entries: Dirent[];
    try {
      entries = readdirSync(path, { withFileTypes: true });
    } catch (cause) {
      throw unreadable('caPath', source, `CA directory ${path}`, cause);
    }
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const entry of entries) {
      const file = join(path, entry.name);
      if (entry.isDirectory()) {
        walk(file);
        continue;
      }
      const pem = readSettingFile('caPath', source, file, 'CA file');
      requirePem('caPath', { pem, source }, 'certificate', file);
      found.push(pem);
    }
  };
  walk(dir);
  if (found.length === 0) throw new InvalidOptionsError('caPath', `${from(source)}the CA directory ${dir} holds no files`);
  return found;
}

function readSettingFile(field: string, source: string, path: string, what: string): Buffer {
  try {
    return readFileSync(path);
  } catch (cause) {
    throw unreadable(field, source, `${what} ${path}`, cause);
  }
}

/** The error for a file or directory that cannot be read: its path and the errno code, never its content. */
function unreadable(field: string, source: string, what: string, cause: unknown): InvalidOptionsError {
  const code = (cause as NodeJS.ErrnoException | null)?.code ?? 'error';
  return new InvalidOptionsError(field, `${from(source)}cannot read the ${what}: ${code}`, { cause });
}

/** Catches a file path passed as PEM text, or a file holding something else. Never echoes the content. */
function requirePem(field: string, { pem, source }: Pem, kind: 'certificate' | 'private key', file?: string): void {
  const text = typeof pem === 'string' ? pem : pem.toString('latin1');
  if ((kind === 'certificate' ? CERTIFICATE : PRIVATE_KEY).test(text)) return;
  const where = file === undefined ? '' : `the file ${file} `;
  const hint = file === undefined && source === field ? ' (pass the PEM text, not a file path)' : '';
  throw new InvalidOptionsError(field, `${from(source)}${where}holds no PEM ${kind}${hint}`);
}

/**
 * Loads the pair once, so a broken certificate, an encrypted key or a key of another certificate
 * is an options error at construction rather than a failed handshake later. OpenSSL's messages
 * name the problem, never the key; only the code is kept.
 */
function checkKeyPair(cert: Pem, key: Pem): void {
  const codeOf = (err: unknown) => String((err as { code?: unknown } | null)?.code ?? 'error');
  try {
    createSecureContext({ cert: cert.pem });
  } catch (err) {
    throw new InvalidOptionsError('clientCert', `${from(cert.source)}is not a usable PEM certificate (${codeOf(err)})`);
  }
  try {
    createSecureContext({ cert: cert.pem, key: key.pem });
  } catch (err) {
    throw new InvalidOptionsError(
      'clientKey',
      `${from(key.source)}is not the unencrypted PEM private key of the client certificate (${codeOf(err)})`,
    );
  }
}

function resolveServerName(option: string | undefined, env: NodeJS.ProcessEnv): string | undefined {
  let raw: unknown = option;
  let source = 'tlsServerName';
  if (option === undefined) {
    if (!nonEmpty(env.CONSUL_TLS_SERVER_NAME)) return undefined;
    raw = env.CONSUL_TLS_SERVER_NAME;
    source = 'CONSUL_TLS_SERVER_NAME';
  }
  if (typeof raw !== 'string') throw new InvalidOptionsError('tlsServerName', 'must be a host name');
  let name = raw.trim();
  // As Consul's client: "host:port" and "[v6]:port" name the host; a bare IPv6 literal stays whole.
  const hostPort = /^(?:\[([^\]]*)\]|([^:]*))(?::(\d{1,5}))?$/.exec(name);
  if (hostPort && (hostPort[1] !== undefined || hostPort[3] !== undefined)) name = hostPort[1] ?? hostPort[2] ?? '';
  if (!isValidAddress(name)) {
    throw new InvalidOptionsError(
      'tlsServerName',
      `${from(source)}must be a host name or IP address, got ${JSON.stringify(raw.slice(0, 100))}`,
    );
  }
  return name;
}

function resolveVerify(option: boolean | undefined, env: NodeJS.ProcessEnv): boolean {
  if (option === undefined) return parseGoBool(env.CONSUL_HTTP_SSL_VERIFY, 'tlsVerify', 'CONSUL_HTTP_SSL_VERIFY', true);
  if (typeof option !== 'boolean') throw new InvalidOptionsError('tlsVerify', 'must be true or false');
  return option;
}

/**
 * Go's strconv.ParseBool, which is what Consul's own client applies to CONSUL_HTTP_SSL and
 * CONSUL_HTTP_SSL_VERIFY. Unset or empty: `unset`. Consul logs and ignores a value it cannot parse;
 * here it is an options error, so a typo cannot silently change how the agent is reached.
 */
function parseGoBool(value: string | undefined, field: string, envName: string, unset: boolean): boolean {
  if (value === undefined || value === '') return unset;
  if (['1', 't', 'T', 'TRUE', 'true', 'True'].includes(value)) return true;
  if (['0', 'f', 'F', 'FALSE', 'false', 'False'].includes(value)) return false;
  throw new InvalidOptionsError(field, `${envName} must be true or false, got ${JSON.stringify(value.slice(0, 20))}`);
}

function nonEmpty(value: string | undefined): value is string {
  return typeof value === 'string' && value.trim() !== '';
}

/** Names the environment variable a value came from; an option's field is already the error's field. */
function from(source: string): string {
  return source.startsWith('CONSUL_') ? `(from ${source}) ` : '';
}

/** True for a bracketed or bare IPv6 literal. */
export function isIpv6Host(host: string): boolean {
  return isIP(host.replace(/^\[|\]$/g, '')) === 6;
}
