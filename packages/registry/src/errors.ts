/**
 * Every error peerlb throws carries a stable `code`, so callers branch on the code and never on
 * the message. Higher packages (registration, client) extend `PeerlbError` with their own codes.
 */
export class PeerlbError extends Error {
  readonly code: string;

  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/** Options or arguments that cannot work. `field` names the offending option, dotted for nesting. */
export class InvalidOptionsError extends PeerlbError {
  readonly field: string;

  constructor(field: string, message: string, options?: { cause?: unknown }) {
    super('PEERLB_INVALID_OPTIONS', `${field}: ${message}`, options);
    this.field = field;
  }
}

/** The registry could not be reached, or answered something we could not use. */
export class RegistryUnavailableError extends PeerlbError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('PEERLB_REGISTRY_UNAVAILABLE', message, options);
  }
}

/** The registry does not know this instance (never registered, reaped, or the registry restarted). */
export class NotRegisteredError extends PeerlbError {
  readonly instanceId: string;

  constructor(instanceId: string, options?: { cause?: unknown }) {
    super('PEERLB_NOT_REGISTERED', `instance "${instanceId}" is not registered`, options);
    this.instanceId = instanceId;
  }
}

/** The registry refused our credentials (Consul ACL). The token itself is never part of the message. */
export class RegistryAuthError extends PeerlbError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('PEERLB_REGISTRY_AUTH', message, options);
  }
}

/** The local registry directory is not safe to trust (symlink, world-writable, foreign owner). */
export class UnsafeRegistryDirectoryError extends PeerlbError {
  readonly path: string;

  constructor(path: string, reason: string) {
    super('PEERLB_UNSAFE_REGISTRY_DIR', `refusing registry directory ${path}: ${reason}`);
    this.path = path;
  }
}

/** The object was closed; the call cannot be served. */
export class ClosedError extends PeerlbError {
  constructor(what: string) {
    super('PEERLB_CLOSED', `${what} is closed`);
  }
}

/** The caller's AbortSignal fired. `cause` is the signal's reason. */
export class AbortedError extends PeerlbError {
  constructor(reason?: unknown) {
    super('PEERLB_ABORTED', 'operation aborted', { cause: reason });
  }
}

export function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new AbortedError(signal.reason);
}
