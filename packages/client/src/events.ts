import type { RegistryLogger } from '@peerlb/registry';
import type { BreakerState } from './resilience/index.js';
import type { PeerInfo } from './errors.js';

type AnyListener = (...args: any[]) => void;

export type { BreakerState };

export interface PeerEvent {
  readonly service: string;
  readonly peer: PeerInfo;
}

export interface PeerEjectedEvent extends PeerEvent {
  /** How long the peer stays out of the picker. */
  readonly durationMs: number;
}

export interface BreakerEvent extends PeerEvent {
  readonly state: BreakerState;
}

export interface RetryEvent {
  readonly service: string;
  /** The peer the failed attempt went to. */
  readonly peer: PeerInfo;
  /** 1-based number of the attempt that failed. */
  readonly attempt: number;
  readonly error: unknown;
  /** HTTP status when the attempt got a retryable response (5xx, 429) rather than an error. */
  readonly statusCode?: number;
}

export interface StaleEvent {
  readonly service: string;
  /** `true` when the registry started failing and the last list is served; `false` once it answers again. */
  readonly stale: boolean;
  /** Set when the stale list outlived `maxStalenessMs` and is no longer served. */
  readonly expired: boolean;
  readonly error?: Error;
}

export interface PanicEvent {
  readonly service: string;
  /** `true`: too few healthy peers, so every peer is used again (panic mode). */
  readonly active: boolean;
  readonly healthy: number;
  readonly total: number;
}

export interface HedgeEvent {
  readonly service: string;
  /** The peer the hedge went to. */
  readonly peer: PeerInfo;
  /** 1-based number of the hedge attempt within its call. */
  readonly attempt: number;
  /** How long the call had waited for its first answer. */
  readonly delayMs: number;
}

export interface AttemptEvent {
  readonly service: string;
  readonly peer: PeerInfo;
  /** 1-based number of the attempt within its call. */
  readonly attempt: number;
}

export interface ClientEventMap {
  'peer:added': [PeerEvent];
  'peer:removed': [PeerEvent];
  'peer:ejected': [PeerEjectedEvent];
  'peer:restored': [PeerEvent];
  breaker: [BreakerEvent];
  retry: [RetryEvent];
  stale: [StaleEvent];
  panic: [PanicEvent];
  /** A hedge was sent (another attempt of a call that had not answered after the delay). */
  hedge: [HedgeEvent];
  /** A hedge answered first: its call got the hedge's answer. */
  'hedge:won': [AttemptEvent];
  /** An attempt was aborted because another attempt of its call answered first. */
  'attempt:cancelled': [AttemptEvent];
}

export type ClientEventName = keyof ClientEventMap;

/**
 * Typed events. A listener that throws is logged and skipped (the others still run): observers
 * must never break the request path or the discovery loop that emit from inside them.
 */
export class ClientEvents {
  private readonly listeners = new Map<ClientEventName, Array<AnyListener>>();

  constructor(private readonly logger: RegistryLogger) {}

  /** Reports a problem that must not break the request path (e.g. a caller's handler that threw). */
  warn(message: string, error: unknown): void {
    this.logger.warn(`${message}: ${(error as Error)?.message ?? String(error)}`);
  }

  on<K extends ClientEventName>(event: K, listener: (...args: ClientEventMap[K]) => void): void {
    if (typeof listener !== 'function') throw new TypeError('listener must be a function');
    // Copy on write: an emit in progress keeps iterating the array it started with.
    this.listeners.set(event, [...(this.listeners.get(event) ?? []), listener as unknown as AnyListener]);
  }

  once<K extends ClientEventName>(event: K, listener: (...args: ClientEventMap[K]) => void): void {
    const wrapper = (...args: ClientEventMap[K]) => {
      this.off(event, wrapper);
      listener(...args);
    };
    // Lets off(event, listener) remove a once() registration too, as EventEmitter does.
    (wrapper as { original?: unknown }).original = listener;
    this.on(event, wrapper);
  }

  off<K extends ClientEventName>(event: K, listener: (...args: ClientEventMap[K]) => void): void {
    const current = this.listeners.get(event);
    if (!current) return;
    const index = current.findIndex((l) => l === (listener as unknown) || (l as { original?: unknown }).original === listener);
    if (index < 0) return;
    const next = current.filter((_, i) => i !== index);
    if (next.length === 0) this.listeners.delete(event);
    else this.listeners.set(event, next);
  }

  /** Cheap guard so hot paths skip building event objects nobody listens to. */
  has(event: ClientEventName): boolean {
    return this.listeners.has(event);
  }

  emit<K extends ClientEventName>(event: K, ...args: ClientEventMap[K]): void {
    const current = this.listeners.get(event);
    if (!current) return;
    for (const listener of current) {
      try {
        listener(...args);
      } catch (err) {
        this.logger.warn(`"${event}" listener threw: ${(err as Error)?.message ?? String(err)}`);
      }
    }
  }

  removeAll(): void {
    this.listeners.clear();
  }
}
