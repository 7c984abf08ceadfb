import { numberOption } from '@peerlb/registry';

export interface EligibleOptions {
  /**
   * Below this fraction of healthy peers, every peer is used again ("panic", as in Envoy):
   * when most of a service looks broken, the detectors are more likely wrong, or the whole
   * service is struggling, and spreading over all peers beats hammering the few left.
   * 0 disables panic mode (an all-broken service then has no eligible peer). Default 0.5.
   */
  healthyPanicThreshold?: number;
}

export interface Eligible<P> {
  /** The peers to build the picker from. */
  readonly peers: readonly P[];
  /** True when the healthy fraction fell below the threshold and all peers are used. */
  readonly panic: boolean;
  readonly healthy: number;
  readonly total: number;
}

export const DEFAULT_HEALTHY_PANIC_THRESHOLD = 0.5;

export function validatePanicThreshold(field: string, value: unknown): number {
  return numberOption(field, value, DEFAULT_HEALTHY_PANIC_THRESHOLD, { min: 0, max: 1 });
}

/**
 * Which peers go into the picker (Finagle's "distributor"): the healthy ones (the caller decides
 * what healthy means: breaker not open, not ejected), or all of them in panic mode. Pure; runs
 * when membership or health changes, not per request. Returns `peers` itself when all are healthy.
 */
export function eligiblePeers<P>(
  peers: readonly P[],
  isHealthy: (peer: P) => boolean,
  healthyPanicThreshold: number = DEFAULT_HEALTHY_PANIC_THRESHOLD,
): Eligible<P> {
  const total = peers.length;
  if (total === 0) return { peers, panic: false, healthy: 0, total: 0 };
  const healthyPeers = peers.filter((peer) => isHealthy(peer));
  const healthy = healthyPeers.length;
  if (healthy === total) return { peers, panic: false, healthy, total };
  if (healthy / total < healthyPanicThreshold) return { peers, panic: true, healthy, total };
  return { peers: healthyPeers, panic: false, healthy, total };
}
