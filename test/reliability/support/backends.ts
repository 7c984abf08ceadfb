import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startConsulDouble, type ConsulDouble, type ConsulDoubleOptions } from '../../support/consul-double.js';
import type { RegistryRef } from './processes.js';

/** A registry shared by the test process and its children, plus a scratch directory. */
export interface Backend {
  readonly name: 'local' | 'consul';
  readonly ref: RegistryRef;
  /** Scratch space for ledgers and reports, removed by `close()`. */
  readonly scratch: string;
  /** The Consul double, for the consul backend. */
  readonly double: ConsulDouble | undefined;
  close(): Promise<void>;
}

export async function openBackend(name: 'local' | 'consul', consul: ConsulDoubleOptions = {}): Promise<Backend> {
  const scratch = await mkdtemp(join(tmpdir(), `peerlb-reliability-${name}-`));
  if (name === 'local') {
    // One level down: tests replace or remove the registry directory itself.
    const dir = join(scratch, 'registry');
    return {
      name,
      ref: { kind: 'local', dir },
      scratch,
      double: undefined,
      close: () => rm(scratch, { recursive: true, force: true }),
    };
  }
  const double = await startConsulDouble({ minCheckIntervalMs: 100, reapIntervalMs: 100, ...consul });
  return {
    name,
    ref: { kind: 'consul', address: double.url, ...(consul.token ? { token: consul.token } : {}) },
    scratch,
    double,
    async close() {
      await double.close();
      await rm(scratch, { recursive: true, force: true });
    },
  };
}
