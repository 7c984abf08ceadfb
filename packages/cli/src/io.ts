import { ConsulRegistry, LocalRegistry, registryFromEnv, type Registry } from '@peerlb/registry';

/** Where a command writes; a TTY gets redraws and a progress bar, anything else plain lines. */
export interface Output {
  write(text: string): unknown;
  readonly isTTY?: boolean;
}

/** Everything a command touches outside itself, so tests can run it in process. */
export interface CliIo {
  readonly stdout: Output;
  readonly stderr: Output;
  readonly env: NodeJS.ProcessEnv;
  /** Aborted on Ctrl-C: ends `--watch` and a `--count` run early. */
  readonly signal: AbortSignal;
}

export interface OpenedRegistry {
  readonly registry: Registry;
  /** For people and `--json`: `local (/dir)`, `consul (http://127.0.0.1:8500)`; never a token. */
  readonly description: string;
}

/** The registry the library would pick from this environment (`registryFromEnv`). */
export function openRegistryFromEnv(env: NodeJS.ProcessEnv): OpenedRegistry {
  // Registry warnings (dropped entries, ...) are not this command's output.
  const registry = registryFromEnv({ env, logger: { warn: () => {} } });
  const description =
    registry instanceof ConsulRegistry
      ? `consul (${registry.address})`
      : registry instanceof LocalRegistry
        ? `local (${registry.dir})`
        : registry.kind;
  return { registry, description };
}
