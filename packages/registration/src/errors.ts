import { PeerlbError } from '@peerlb/registry';

/**
 * Startup registration did not succeed within `startupTimeoutMs`, or the registry refused it for
 * a reason retrying cannot fix. `cause` holds the last registry error. Nothing stays registered:
 * the instance was deregistered (best effort) before this was thrown.
 */
export class RegistrationFailedError extends PeerlbError {
  readonly instanceId: string;
  readonly attempts: number;

  constructor(instanceId: string, attempts: number, message: string, options?: { cause?: unknown }) {
    super('PEERLB_REGISTRATION_FAILED', message, options);
    this.instanceId = instanceId;
    this.attempts = attempts;
  }
}

/** `startService` could not listen: the given port is taken, or no port of the range was free. */
export class PortUnavailableError extends PeerlbError {
  readonly port: number | undefined;
  readonly range: { start: number; end: number } | undefined;

  constructor(
    message: string,
    where: { port?: number; range?: { start: number; end: number } },
    options?: { cause?: unknown },
  ) {
    super('PEERLB_PORT_UNAVAILABLE', message, options);
    this.port = where.port;
    this.range = where.range;
  }
}

/**
 * The health function threw or rejected (`cause` holds what it threw). The instance is reported
 * critical until the function passes again; this error says why. Emitted as an `error` event and
 * logged, rate-limited.
 */
export class HealthCheckFailedError extends PeerlbError {
  readonly instanceId: string;

  constructor(instanceId: string, message: string, options?: { cause?: unknown }) {
    super('PEERLB_HEALTH_CHECK_FAILED', message, options);
    this.instanceId = instanceId;
  }
}
