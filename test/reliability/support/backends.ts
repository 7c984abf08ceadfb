import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startCluster } from '../../support/consul-agent.js';
import { startConsulDouble, type ConsulDouble, type ConsulDoubleOptions } from '../../support/consul-double.js';
import type { RegistryRef } from './processes.js';

/** A registry shared by the test process and its children, plus a scratch directory. */
export interface Backend {
  readonly name: 'local' | 'consul' | 'consul-cluster';
  /** Where the client (load generator) reads the registry. */
  readonly ref: RegistryRef;
  /** Where instance number `n` registers: `ref` unless the backend spreads them (a cluster's client agents). */
  instanceRef(n: number): RegistryRef;
  /** Scratch space for ledgers and reports, removed by `close()`. */
  readonly scratch: string;
  /** The Consul double, for the consul backend. */
  readonly double: ConsulDouble | undefined;
  close(): Promise<void>;
}

export async function openBackend(name: Backend['name'], consul: ConsulDoubleOptions = {}): Promise<Backend> {
  const scratch = await mkdtemp(join(tmpdir(), `peerlb-reliability-${name}-`));
  if (name === 'consul-cluster') {
    // A real Consul 1.8.7 cluster: instances register through two client agents in turn, the
    // client reads through a third.
    const cluster = await startCluster({ servers: 3, clients: 3 }).catch(async (err: unknown) => {
      await rm(scratch, { recursive: true, force: true });
      throw err;
    });
    const [one, two, reader] = cluster.clients.map((a) => ({ kind: 'consul' as const, address: a.url }));
    return {
      name,
      ref: reader!,
      instanceRef: (n) => (n % 2 === 0 ? one! : two!),
      scratch,
      double: undefined,
      async close() {
        await cluster.close();
        await rm(scratch, { recursive: true, force: true });
      },
    };
  }
  if (name === 'local') {
    // One level down: tests replace or remove the registry directory itself.
    const dir = join(scratch, 'registry');
    const ref: RegistryRef = { kind: 'local', dir };
    return {
      name,
      ref,
      instanceRef: () => ref,
      scratch,
      double: undefined,
      close: () => rm(scratch, { recursive: true, force: true }),
    };
  }
  const double = await startConsulDouble({ minCheckIntervalMs: 100, reapIntervalMs: 100, ...consul });
  const ref: RegistryRef = { kind: 'consul', address: double.url, ...(consul.token ? { token: consul.token } : {}) };
  return {
    name,
    ref,
    instanceRef: () => ref,
    scratch,
    double,
    async close() {
      await double.close();
      await rm(scratch, { recursive: true, force: true });
    },
  };
}
