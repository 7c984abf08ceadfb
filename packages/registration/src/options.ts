import { isIP } from 'node:net';
import {
  InvalidOptionsError,
  consoleLogger,
  isValidAddress,
  parseInstance,
  validateCheckSpec,
  durationOption,
  validateInstanceId,
  validateServiceName,
  type BackoffOptions,
  type HealthCheckSpec,
  type Registry,
  type RegistryLogger,
  type ServiceInstance,
} from '@peerlb/registry';
import type { PortChoice } from './port.js';
import type { RegistrationEvents } from './events.js';
import type { HealthFunction } from './health.js';

export type { HealthFunction } from './health.js';

/** HTTP check polled by the registry. `true` takes every default. */
export interface HttpCheckOptions {
  /** Path on the instance (default: `healthPath` for `startService`, `/health` otherwise). */
  path?: string;
  /** Full URL to poll instead of a path on the instance. */
  url?: string;
  /** Default 10 000. */
  intervalMs?: number;
  /** Default: the smaller of 10 s and `intervalMs`. */
  timeoutMs?: number;
}

/** How the registry decides the instance is healthy. Without `http` and `ttlMs`, a 5 s TTL. */
export interface CheckOptions {
  http?: boolean | HttpCheckOptions;
  /** TTL check: the instance heartbeats every `heartbeatIntervalMs` (default ttlMs / 3). */
  ttlMs?: number;
  /** Remove the instance after it has been critical this long. Default 60 000. */
  deregisterCriticalAfterMs?: number;
}

export interface RegisterServiceOptions {
  /** Service name: 1..63 letters, digits, `_` or `-`. */
  service: string;
  /** The port the instance already listens on. */
  port: number;
  /** Address callers dial. Default: env `ADDRESS`, else `127.0.0.1`. */
  address?: string;
  /** Instance id. Default `<service>-<nanoid(10)>`. */
  id?: string;
  tags?: readonly string[];
  meta?: Readonly<Record<string, string>>;
  /** Default: `registryFromEnv()` (Consul when `CONSUL_HTTP_ADDR` is set, else the local registry), closed with the handle. */
  registry?: Registry;
  check?: CheckOptions;
  health?: HealthFunction;
  /** Default: the smaller of 5 s and the heartbeat interval. */
  healthTimeoutMs?: number;
  /** Default: ttlMs / 3 with a TTL check, else the HTTP interval (at most 10 s). */
  heartbeatIntervalMs?: number;
  /** How long startup keeps retrying a failing registration. Default 30 000. */
  startupTimeoutMs?: number;
  /** Bound on each registry call (register, heartbeat, deregister). Default 5 000. */
  callTimeoutMs?: number;
  /** How long deregistration is retried when leaving. Default 5 000. */
  deregisterTimeoutMs?: number;
  /** Retry delays for startup registration and re-registration. Default 250 ms .. 10 s, full jitter. */
  backoff?: BackoffOptions;
  logger?: RegistryLogger;
  /** Aborts startup; once started, aborting it closes the handle (like `server.listen({ signal })`). */
  signal?: AbortSignal;
  /** Event listeners attached before startup, so `state` and `registered` during startup are seen too. */
  on?: EventListeners;
}

/** A listener per event name, for the `on` option. */
export type EventListeners = {
  [K in keyof RegistrationEvents]?: (...args: RegistrationEvents[K]) => void;
};

/** Who serves requests: exactly one of `handler`, `app` and `server`. */
export type RequestListener = (req: import('node:http').IncomingMessage, res: import('node:http').ServerResponse) => unknown;

export interface StartServiceOptions extends Omit<RegisterServiceOptions, 'port'> {
  /** A `(req, res)` request handler; startService creates the server. */
  handler?: RequestListener;
  /** An express-style app (a function `(req, res, next?)`); startService creates the server. */
  app?: (req: import('node:http').IncomingMessage, res: import('node:http').ServerResponse, next?: (err?: unknown) => void) => unknown;
  /** A `node:http` (or `node:https`) server that is not listening yet; startService listens it. */
  server?: import('node:http').Server;
  /** A fixed port; 0 for an ephemeral one. Default 0 unless `portRange` is given. */
  port?: number;
  /** Search this range (inclusive) with portfinder, retrying when `listen` meets `EADDRINUSE`. */
  portRange?: { start: number; end: number };
  /** Interface to bind. Default: `address` when it is an IP literal, else every interface. */
  host?: string;
  /** Default `/health`. */
  healthPath?: string;
  /** How long to keep serving after deregistering, before closing: the most the drain lasts. Default 5 000. */
  drainMs?: number;
  /**
   * How long callers' watches may take to see the deregistration. The drain ends early once the
   * registry confirmed the deregistration, this much time passed, and no request is in flight.
   * Default 1 000; `drainMs` or more keeps the full drain.
   */
  drainPropagationMs?: number;
  /** After the drain window, how long in-flight requests get before connections are destroyed. Default 10 000. */
  closeTimeoutMs?: number;
  /** Install SIGINT/SIGTERM handlers that drain and exit. Default true. */
  handleSignals?: boolean;
  /** On uncaughtException/unhandledRejection: deregister (bounded), exit 1. Default: `handleSignals`. */
  handleCrashes?: boolean;
  /** Per-caller token bucket on the serving side; the health endpoint is never limited. */
  rateLimit?: import('./rate-limit/caller-limiter.js').RateLimitOptions;
  /** Per-request serving steps, e.g. `{ loadReport: false }` to stop reporting load. */
  serving?: import('./serving/serving-steps.js').ServingOptions;
}

/** `startService` run as node:cluster workers. */
export interface StartWorkersOptions extends StartServiceOptions {
  /**
   * Run the service as this many node:cluster workers (`'auto'`: one per CPU), each its own
   * instance on its own port. The primary process supervises them; see `ServiceCluster`.
   */
  workers: number | 'auto';
  /** How the primary restarts a dead worker. */
  workerRestart?: import('./workers/worker-options.js').WorkerRestartOptions;
}

/** Everything a `Registration` needs, checked and defaulted. The port is filled in when known. */
export interface RegistrationConfig {
  id: string;
  service: string;
  address: string;
  tags: readonly string[];
  meta: Readonly<Record<string, string>>;
  check: HealthCheckSpec;
  heartbeatIntervalMs: number;
  health: HealthFunction | undefined;
  healthTimeoutMs: number;
  startupTimeoutMs: number;
  callTimeoutMs: number;
  deregisterTimeoutMs: number;
  backoff: BackoffOptions;
  registry: Registry | undefined;
  logger: RegistryLogger;
  signal: AbortSignal | undefined;
  on: EventListeners;
}

export interface StartConfig {
  registration: RegistrationConfig;
  listener: { kind: 'handler'; fn: RequestListener } | { kind: 'server'; server: import('node:http').Server };
  port: PortChoice;
  host: string | undefined;
  healthPath: string;
  drainMs: number;
  drainPropagationMs: number;
  closeTimeoutMs: number;
  handleSignals: boolean;
  handleCrashes: boolean;
  rateLimit: import('./rate-limit/caller-limiter.js').RateLimitOptions | undefined;
  serving: import('./serving/serving-steps.js').ServingOptions;
}

export const DEFAULT_TTL_MS = 5_000;
export const DEFAULT_DEREGISTER_CRITICAL_AFTER_MS = 60_000;
export const DEFAULT_HTTP_INTERVAL_MS = 10_000;
export const DEFAULT_STARTUP_TIMEOUT_MS = 30_000;
export const DEFAULT_CALL_TIMEOUT_MS = 5_000;
export const DEFAULT_DEREGISTER_TIMEOUT_MS = 5_000;
export const DEFAULT_DRAIN_MS = 5_000;
// A local-registry watcher rescans every 500 ms by default (fs.watch is faster still), a Consul
// blocking query answers on change: two rescans' worth covers both.
export const DEFAULT_DRAIN_PROPAGATION_MS = 1_000;
export const DEFAULT_CLOSE_TIMEOUT_MS = 10_000;
export const DEFAULT_HEALTH_PATH = '/health';

function requireObject(value: unknown, field: string): asserts value is Record<string, unknown> {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new InvalidOptionsError(field, 'must be an object');
  }
}

function optionalDuration(value: unknown, field: string, fallback: number): number {
  return durationOption(field, value, fallback);
}

/** A duration that may be 0 (e.g. no drain window at all). */
function optionalNonNegativeMs(value: unknown, field: string, fallback: number): number {
  return durationOption(field, value, fallback, { allowZero: true });
}

function optionalBoolean(value: unknown, field: string, fallback: boolean): boolean {
  if (value === undefined) return fallback;
  if (typeof value !== 'boolean') throw new InvalidOptionsError(field, `must be true or false, got ${typeof value}`);
  return value;
}

function resolveAddress(value: unknown): string {
  if (value !== undefined) {
    if (!isValidAddress(value)) {
      throw new InvalidOptionsError('address', `must be an IP address or host name, got ${JSON.stringify(value)}`);
    }
    return value;
  }
  const fromEnv = process.env.ADDRESS;
  if (fromEnv !== undefined && fromEnv !== '') {
    if (!isValidAddress(fromEnv)) {
      throw new InvalidOptionsError('address', `environment variable ADDRESS is not an IP address or host name: ${JSON.stringify(fromEnv)}`);
    }
    return fromEnv;
  }
  return '127.0.0.1';
}

function normaliseCheck(raw: unknown, defaultHttpPath: string): HealthCheckSpec {
  if (raw === undefined) return { ttlMs: DEFAULT_TTL_MS, deregisterCriticalAfterMs: DEFAULT_DEREGISTER_CRITICAL_AFTER_MS };
  requireObject(raw, 'check');
  const check = raw as CheckOptions;
  const spec: HealthCheckSpec = {
    deregisterCriticalAfterMs: optionalDuration(
      check.deregisterCriticalAfterMs,
      'check.deregisterCriticalAfterMs',
      DEFAULT_DEREGISTER_CRITICAL_AFTER_MS,
    ),
  };
  if (check.http !== undefined && check.http !== false) {
    if (check.http !== true) requireObject(check.http, 'check.http');
    const http: HttpCheckOptions = check.http === true ? {} : check.http;
    spec.http = {
      intervalMs: http.intervalMs ?? DEFAULT_HTTP_INTERVAL_MS,
      ...(http.url !== undefined ? { url: http.url } : { path: http.path ?? defaultHttpPath }),
      ...(http.timeoutMs !== undefined ? { timeoutMs: http.timeoutMs } : {}),
    };
    if (http.url !== undefined && http.path !== undefined) {
      throw new InvalidOptionsError('check.http', 'give path or url, not both');
    }
  }
  if (check.ttlMs !== undefined) spec.ttlMs = check.ttlMs;
  else if (spec.http === undefined) spec.ttlMs = DEFAULT_TTL_MS;
  // The registry's own validation names the field (check.ttlMs, check.http.intervalMs, ...).
  validateCheckSpec(spec, 'check');
  return spec;
}

function validateHealthPath(value: unknown): string {
  if (value === undefined) return DEFAULT_HEALTH_PATH;
  if (typeof value !== 'string' || !/^\/[\x21-\x7e]*$/.test(value) || value.includes('?') || value.includes('#')) {
    throw new InvalidOptionsError('healthPath', `must start with / and hold no spaces, query or fragment, got ${JSON.stringify(value)}`);
  }
  return value;
}

function validateBackoff(value: unknown): BackoffOptions {
  if (value === undefined) return {};
  requireObject(value, 'backoff');
  const b = value as BackoffOptions;
  const minMs = optionalDuration(b.minMs, 'backoff.minMs', 250);
  const maxMs = optionalDuration(b.maxMs, 'backoff.maxMs', 10_000);
  if (maxMs < minMs) throw new InvalidOptionsError('backoff.maxMs', `must be >= backoff.minMs (${minMs})`);
  return { minMs, maxMs };
}

function validateRegistry(value: unknown): Registry | undefined {
  if (value === undefined) return undefined;
  const r = value as Partial<Registry> | null;
  if (
    r === null ||
    typeof r !== 'object' ||
    typeof r.register !== 'function' ||
    typeof r.deregister !== 'function' ||
    typeof r.heartbeat !== 'function'
  ) {
    throw new InvalidOptionsError('registry', 'must implement the Registry contract (register, deregister, heartbeat)');
  }
  return value as Registry;
}

function validateLogger(value: unknown): RegistryLogger {
  if (value === undefined) return consoleLogger;
  if (value === null || typeof value !== 'object' || typeof (value as RegistryLogger).warn !== 'function') {
    throw new InvalidOptionsError('logger', 'must have a warn(message, details?) method');
  }
  return value as RegistryLogger;
}

const EVENT_NAMES: ReadonlySet<string> = new Set<keyof RegistrationEvents>([
  'state',
  'registered',
  'lost',
  'reregistered',
  'unhealthy',
  'healthy',
  'draining',
  'deregistered',
  'closed',
  'error',
]);

function validateListeners(value: unknown): EventListeners {
  if (value === undefined) return {};
  requireObject(value, 'on');
  for (const [event, listener] of Object.entries(value)) {
    if (!EVENT_NAMES.has(event)) throw new InvalidOptionsError(`on.${event}`, `unknown event; known: ${[...EVENT_NAMES].join(', ')}`);
    if (typeof listener !== 'function') throw new InvalidOptionsError(`on.${event}`, 'must be a function');
  }
  return value as EventListeners;
}

function validateSignal(value: unknown): AbortSignal | undefined {
  if (value === undefined) return undefined;
  if (!(value instanceof AbortSignal)) throw new InvalidOptionsError('signal', 'must be an AbortSignal');
  return value;
}

/**
 * Checks every option shared by `registerService` and `startService`. `port` is only used to
 * validate the instance shape; `startService` passes a placeholder until it has listened.
 */
function normaliseRegistration(
  options: Omit<RegisterServiceOptions, 'port'>,
  port: number,
  defaultHttpPath: string,
  makeId: (service: string) => string,
): RegistrationConfig {
  const service = validateServiceName(options.service, 'service');
  const id = options.id === undefined ? makeId(service) : validateInstanceId(options.id, 'id');
  const address = resolveAddress(options.address);
  const parsed = parseInstance({ id, service, address, port, tags: options.tags ?? [], meta: options.meta ?? {} });
  if (!parsed.ok) throw new InvalidOptionsError(parsed.field, parsed.reason);
  const instance: ServiceInstance = parsed.value;
  const check = normaliseCheck(options.check, defaultHttpPath);

  const defaultInterval =
    check.ttlMs !== undefined ? check.ttlMs / 3 : Math.min(check.http?.intervalMs ?? DEFAULT_HTTP_INTERVAL_MS, 10_000);
  const heartbeatIntervalMs = optionalDuration(options.heartbeatIntervalMs, 'heartbeatIntervalMs', defaultInterval);
  if (check.ttlMs !== undefined && heartbeatIntervalMs >= check.ttlMs) {
    throw new InvalidOptionsError('heartbeatIntervalMs', `must be shorter than check.ttlMs (${check.ttlMs}) or the TTL lapses between beats`);
  }
  if (options.health !== undefined && typeof options.health !== 'function') {
    throw new InvalidOptionsError('health', 'must be a function returning a boolean or a promise');
  }
  return {
    id,
    service,
    address,
    tags: instance.tags,
    meta: instance.meta,
    check,
    heartbeatIntervalMs,
    health: options.health,
    healthTimeoutMs: optionalDuration(options.healthTimeoutMs, 'healthTimeoutMs', Math.min(5_000, heartbeatIntervalMs)),
    startupTimeoutMs: optionalDuration(options.startupTimeoutMs, 'startupTimeoutMs', DEFAULT_STARTUP_TIMEOUT_MS),
    callTimeoutMs: optionalDuration(options.callTimeoutMs, 'callTimeoutMs', DEFAULT_CALL_TIMEOUT_MS),
    deregisterTimeoutMs: optionalDuration(options.deregisterTimeoutMs, 'deregisterTimeoutMs', DEFAULT_DEREGISTER_TIMEOUT_MS),
    backoff: validateBackoff(options.backoff),
    registry: validateRegistry(options.registry),
    logger: validateLogger(options.logger),
    signal: validateSignal(options.signal),
    on: validateListeners(options.on),
  };
}

export function normaliseRegisterOptions(options: RegisterServiceOptions, makeId: (service: string) => string): {
  config: RegistrationConfig;
  port: number;
} {
  requireObject(options, 'options');
  if (options.port === undefined) throw new InvalidOptionsError('port', 'is required: the port the instance listens on');
  if (typeof options.port !== 'number' || !Number.isInteger(options.port) || options.port < 1 || options.port > 65535) {
    throw new InvalidOptionsError('port', `must be an integer in 1..65535, got ${String(options.port)}`);
  }
  return { config: normaliseRegistration(options, options.port, DEFAULT_HEALTH_PATH, makeId), port: options.port };
}

function validatePortChoice(options: StartServiceOptions): PortChoice {
  if (options.port !== undefined && options.portRange !== undefined) {
    throw new InvalidOptionsError('port', 'give port or portRange, not both');
  }
  if (options.portRange !== undefined) {
    requireObject(options.portRange, 'portRange');
    const { start, end } = options.portRange;
    const isPort = (p: unknown): p is number => typeof p === 'number' && Number.isInteger(p) && p >= 1 && p <= 65535;
    if (!isPort(start)) throw new InvalidOptionsError('portRange.start', `must be an integer in 1..65535, got ${String(start)}`);
    if (!isPort(end)) throw new InvalidOptionsError('portRange.end', `must be an integer in 1..65535, got ${String(end)}`);
    if (end < start) throw new InvalidOptionsError('portRange.end', `must be >= portRange.start (${start}), got ${end}`);
    return { kind: 'range', start, end };
  }
  const port = options.port ?? 0;
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 0 || port > 65535) {
    throw new InvalidOptionsError('port', `must be an integer in 0..65535 (0: ephemeral), got ${String(port)}`);
  }
  return port === 0 ? { kind: 'ephemeral' } : { kind: 'fixed', port };
}

function validateListener(options: StartServiceOptions): StartConfig['listener'] {
  const given = (['handler', 'app', 'server'] as const).filter((k) => options[k] !== undefined);
  if (given.length !== 1) {
    throw new InvalidOptionsError(
      given[1] ?? 'handler',
      given.length === 0 ? 'give one of handler, app or server' : `give only one of handler, app and server (got ${given.join(', ')})`,
    );
  }
  if (options.server !== undefined) {
    const server = options.server as unknown as { listen?: unknown; listening?: unknown; on?: unknown };
    if (server === null || typeof server !== 'object' || typeof server.listen !== 'function' || typeof server.on !== 'function') {
      throw new InvalidOptionsError('server', 'must be a node:http or node:https Server');
    }
    if (server.listening === true) {
      throw new InvalidOptionsError('server', 'is already listening: startService listens it (use registerService for a server you listen yourself)');
    }
    return { kind: 'server', server: options.server };
  }
  const field = given[0]!;
  const fn = options[field as 'handler' | 'app'];
  if (typeof fn !== 'function') throw new InvalidOptionsError(field, 'must be a function (req, res)');
  return { kind: 'handler', fn: fn as RequestListener };
}

export function normaliseStartOptions(options: StartServiceOptions, makeId: (service: string) => string): StartConfig {
  requireObject(options, 'options');
  const listener = validateListener(options);
  const port = validatePortChoice(options);
  const healthPath = validateHealthPath(options.healthPath);
  // Port 1 stands in until listen tells us the real one; only the instance's shape is checked here.
  const registration = normaliseRegistration(options, port.kind === 'fixed' ? port.port : 1, healthPath, makeId);
  let host = options.host;
  if (host !== undefined && (typeof host !== 'string' || !isValidAddress(host))) {
    throw new InvalidOptionsError('host', `must be an IP address or host name to bind, got ${JSON.stringify(host)}`);
  }
  if (host === undefined && isIP(registration.address) !== 0) host = registration.address;
  const handleSignals = optionalBoolean(options.handleSignals, 'handleSignals', true);
  if (options.rateLimit !== undefined) requireObject(options.rateLimit, 'rateLimit');
  if (options.serving !== undefined) requireObject(options.serving, 'serving');
  return {
    registration,
    listener,
    port,
    host,
    healthPath,
    drainMs: optionalNonNegativeMs(options.drainMs, 'drainMs', DEFAULT_DRAIN_MS),
    drainPropagationMs: optionalNonNegativeMs(options.drainPropagationMs, 'drainPropagationMs', DEFAULT_DRAIN_PROPAGATION_MS),
    closeTimeoutMs: optionalDuration(options.closeTimeoutMs, 'closeTimeoutMs', DEFAULT_CLOSE_TIMEOUT_MS),
    handleSignals,
    handleCrashes: optionalBoolean(options.handleCrashes, 'handleCrashes', handleSignals),
    rateLimit: options.rateLimit,
    serving: options.serving ?? {},
  };
}
