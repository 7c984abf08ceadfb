/**
 * Where an instance is in its life:
 *
 * - `starting`: options checked; `startService` is finding a port and listening.
 * - `registering`: the first `register` call (retried with backoff until `startupTimeoutMs`).
 * - `registered`: in the registry, health function passing, heartbeats flowing.
 * - `unhealthy`: in the registry but the health function fails; the check is reported critical.
 * - `reregistering`: the registry forgot the instance (restart, lost file, 404); registering again.
 * - `draining`: shutting down: deregistered (or deregistering), still serving for `drainMs`.
 * - `deregistered`: `deregister()` was called; no longer in the registry, server still up.
 * - `closed`: nothing left running. Terminal.
 */
export type RegistrationState =
  | 'starting'
  | 'registering'
  | 'registered'
  | 'unhealthy'
  | 'reregistering'
  | 'draining'
  | 'deregistered'
  | 'closed';

const TRANSITIONS: Readonly<Record<RegistrationState, readonly RegistrationState[]>> = {
  starting: ['registering', 'draining', 'closed'],
  // registering -> reregistering: the registry forgot the instance before its first heartbeat.
  registering: ['registered', 'unhealthy', 'reregistering', 'draining', 'closed'],
  registered: ['unhealthy', 'reregistering', 'draining', 'deregistered'],
  unhealthy: ['registered', 'reregistering', 'draining', 'deregistered'],
  reregistering: ['registered', 'unhealthy', 'draining', 'deregistered'],
  draining: ['closed'],
  deregistered: ['draining', 'closed'],
  closed: [],
};

export function canTransition(from: RegistrationState, to: RegistrationState): boolean {
  return TRANSITIONS[from].includes(to);
}

/** States in which the instance is (or is being put) in the registry and heartbeats run. */
export function isLive(state: RegistrationState): boolean {
  return state === 'registered' || state === 'unhealthy' || state === 'reregistering';
}

/** States in which the health endpoint must answer 503 whatever the health function says. */
export function isLeaving(state: RegistrationState): boolean {
  return state === 'draining' || state === 'deregistered' || state === 'closed';
}

/**
 * Holds the current state and refuses transitions the table does not allow, so a race between
 * (say) the heartbeat loop and `close()` cannot move a closing instance back to `registered`.
 */
export class Lifecycle {
  private current: RegistrationState = 'starting';

  constructor(private readonly onChange: (state: RegistrationState, previous: RegistrationState) => void) {}

  get state(): RegistrationState {
    return this.current;
  }

  /** Moves to `to` when allowed; returns false (and changes nothing) otherwise. Same state: no-op, true. */
  to(to: RegistrationState): boolean {
    const from = this.current;
    if (from === to) return true;
    if (!canTransition(from, to)) return false;
    this.current = to;
    this.onChange(to, from);
    return true;
  }
}
