import { PeerlbError } from '@peerlb/registry';
import { DeadlineError, NoPeersError } from '@peerlb/client';

/** What `peerlb` exits with: each number means one kind of outcome, so scripts can branch on it. */
export const EXIT = {
  /** Done; every answer had a status below 400. */
  ok: 0,
  /** The service answered, with a status of 400 or more (at least once, with `--count`). */
  httpError: 1,
  /** Bad command line. */
  usage: 2,
  /** The registry could not be read (down, refused, unusable, access denied). */
  registryUnavailable: 3,
  /** The service has no healthy instance. */
  noInstances: 4,
  /** A request got no answer (deadline, connection failures on every peer tried, rate limit). */
  requestFailed: 5,
  /** Ctrl-C before the command was done (the shell's convention: 128 + SIGINT). */
  interrupted: 130,
} as const;

export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

/** A failure `peerlb` reports as one line and an exit code, with a stable `code` for `--json`. */
export class CliError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly exitCode: ExitCode,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'CliError';
  }
}

/** The command line itself is wrong: exit 2, with the usage text. */
export class UsageError extends CliError {
  constructor(message: string) {
    super('PEERLB_CLI_USAGE', message, EXIT.usage);
    this.name = 'UsageError';
  }
}

const REGISTRY_CODES = new Set([
  'PEERLB_REGISTRY_UNAVAILABLE',
  'PEERLB_REGISTRY_AUTH',
  'PEERLB_UNSAFE_REGISTRY_DIR',
  'PEERLB_ABORTED',
]);

/**
 * Any error of a command as a `CliError`: library errors keep their code and get the exit code of
 * their kind; anything else is a failed request.
 */
export function toCliError(err: unknown, context: { service?: string; registry: string }): CliError {
  if (err instanceof CliError) return err;
  if (err instanceof NoPeersError) {
    if (err.reason === 'no-instances') return noInstances(err.service, context.registry);
    if (err.reason === 'registry-unavailable' || err.reason === 'no-answer') {
      return registryUnavailable(context.registry, err);
    }
    return new CliError(err.code, err.message, EXIT.requestFailed, { cause: err });
  }
  if (err instanceof DeadlineError) return new CliError(err.code, err.message, EXIT.requestFailed, { cause: err });
  if (err instanceof PeerlbError) {
    if (err.code === 'PEERLB_INVALID_OPTIONS') return new CliError(err.code, err.message, EXIT.usage, { cause: err });
    if (REGISTRY_CODES.has(err.code)) return registryUnavailable(context.registry, err);
    return new CliError(err.code, err.message, EXIT.requestFailed, { cause: err });
  }
  const message = err instanceof Error ? err.message : String(err);
  return new CliError('PEERLB_CLI_FAILED', message, EXIT.requestFailed, { cause: err });
}

export function noInstances(service: string, registry: string): CliError {
  return new CliError('PEERLB_NO_INSTANCES', `service "${service}" has no healthy instance in ${registry}`, EXIT.noInstances);
}

function registryUnavailable(registry: string, err: PeerlbError): CliError {
  const detail = err.code === 'PEERLB_ABORTED' ? 'no answer in time' : err.message;
  return new CliError(
    'PEERLB_REGISTRY_UNAVAILABLE',
    `cannot read the registry (${registry}): ${detail}`,
    EXIT.registryUnavailable,
    { cause: err },
  );
}
