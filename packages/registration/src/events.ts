import type { RegistrationState } from './lifecycle.js';

/** Events a handle emits, with their arguments. */
export interface RegistrationEvents {
  /** Every state change. */
  state: [state: RegistrationState, previous: RegistrationState];
  /** Startup registration succeeded (after `attempts` tries). */
  registered: [info: { id: string; attempts: number }];
  /** The registry no longer knows the instance (restart, lost file, 404); re-registration follows. */
  lost: [error: Error];
  /** Registered again after `lost`. */
  reregistered: [info: { id: string; attempts: number }];
  /** The health function started failing; the check is reported critical. */
  unhealthy: [reason: string];
  /** The health function passes again after `unhealthy`. */
  healthy: [];
  /** Shutdown began: the health endpoint answers 503. */
  draining: [];
  /** The registry confirmed the deregistration. */
  deregistered: [];
  /** Everything stopped. */
  closed: [];
  /**
   * Something failed that the instance survives (a heartbeat or a re-registration attempt could
   * not reach the registry, a handler threw). Without a listener it is logged, never thrown.
   */
  error: [error: Error];
}
