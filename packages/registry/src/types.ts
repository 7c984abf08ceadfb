/** One running instance of a service, as the registry knows it. */
export interface ServiceInstance {
  /** Unique across the registry. Letters, digits and `_ . : @ -`, 1..128 chars, not starting with `. : @ -`. */
  readonly id: string;
  /** Service name: letters, digits, `_` and `-`, 1..63 chars, starting with a letter or digit. */
  readonly service: string;
  /** IPv4, IPv6 or a DNS host name. */
  readonly address: string;
  /** 1..65535. */
  readonly port: number;
  readonly tags: readonly string[];
  readonly meta: Readonly<Record<string, string>>;
}

/** What a caller hands to `register`: tags and meta may be left out. */
export interface ServiceInstanceInput {
  id: string;
  service: string;
  address: string;
  port: number;
  tags?: readonly string[];
  meta?: Readonly<Record<string, string>>;
}

/** The registry polls the instance over HTTP; 2xx is passing, 429 warning, anything else critical. */
export interface HttpCheckSpec {
  /** Path on the instance's own address and port (default `/health`). Mutually exclusive with `url`. */
  path?: string;
  /** Full http(s) URL to poll instead of the instance's address. */
  url?: string;
  /** How often to poll. */
  intervalMs: number;
  /** Per-poll timeout (default: the smaller of 10 s and `intervalMs`). */
  timeoutMs?: number;
}

/**
 * How the registry decides an instance is healthy. At least one of `http` and `ttlMs`; with both,
 * both must pass. A check starts critical, as in Consul: an instance is not served until its first
 * HTTP poll passes or its first heartbeat arrives.
 */
export interface HealthCheckSpec {
  http?: HttpCheckSpec;
  /** The instance must call `heartbeat()` at least this often. */
  ttlMs?: number;
  /** Remove the instance once it has been critical this long (Consul's DeregisterCriticalServiceAfter). */
  deregisterCriticalAfterMs?: number;
}

export type CheckStatus = 'passing' | 'warning' | 'critical';

export interface HeartbeatOptions {
  /** Default `passing`. `warning` and `critical` take the instance out of the healthy set. */
  status?: CheckStatus;
  /** Free text stored with the check (Consul's check output). */
  note?: string;
  signal?: AbortSignal;
}

/** Only instances carrying every tag and every meta pair are returned. */
export interface InstanceFilter {
  tags?: readonly string[];
  meta?: Readonly<Record<string, string>>;
}

export interface CallOptions {
  signal?: AbortSignal;
}

export interface ListOptions extends CallOptions {
  filter?: InstanceFilter;
}

export interface WatchOptions {
  filter?: InstanceFilter;
}

/**
 * What a watch hands its listener: the full current healthy set after every change, or an error
 * when the registry cannot be read (the watch keeps trying; the next success follows).
 */
export type WatchUpdate =
  | { readonly ok: true; readonly instances: readonly ServiceInstance[]; readonly at: number }
  | { readonly ok: false; readonly error: Error; readonly at: number };

export type WatchListener = (update: WatchUpdate) => void;

export interface WatchHandle {
  /** Stops the watch; no listener call follows. Idempotent. */
  close(): void;
  [Symbol.dispose](): void;
}

/**
 * The contract every registry adapter honours. Instances read from any backend are validated
 * before they are handed on; invalid ones are dropped and reported through the adapter's logger.
 */
export interface Registry {
  /** `consul`, `local`, `memory`: for logs and stats. */
  readonly kind: string;
  /** Registers (or re-registers, keeping check status) an instance with its health check. */
  register(instance: ServiceInstanceInput, check: HealthCheckSpec, options?: CallOptions): Promise<void>;
  /** Removes the instance and its checks. Unknown ids are not an error. */
  deregister(id: string, options?: CallOptions): Promise<void>;
  /** Renews the TTL check. Throws `NotRegisteredError` when the registry has forgotten the instance. */
  heartbeat(id: string, options?: HeartbeatOptions): Promise<void>;
  /** The healthy instances now (one registry read). */
  list(service: string, options?: ListOptions): Promise<ServiceInstance[]>;
  /**
   * Names of the services that have at least one registered instance, healthy or not, sorted (for
   * tools such as `peerlb services`). Optional: an adapter that cannot enumerate services leaves it out.
   */
  services?(options?: CallOptions): Promise<string[]>;
  /** Calls `listener` with the healthy instances now and after every change, until closed. */
  watch(service: string, listener: WatchListener, options?: WatchOptions): WatchHandle;
  /** Stops watches, checks and timers this registry object owns. Does not deregister anything. */
  close(): Promise<void>;
}

/** Where adapters report what they dropped or had trouble with. Never given secrets. */
export interface RegistryLogger {
  warn(message: string, details?: Record<string, unknown>): void;
}
