import type { Registry } from '../types.js';

/**
 * How a child process builds a registry client equivalent to `ConformanceTarget.open()`:
 * plain JSON, passed on the command line of the peer process.
 */
export type PeerRegistryConfig =
  | { kind: 'local'; dir: string }
  | { kind: 'consul'; address: string; token?: string };

/** What an adapter hands the conformance suite. Optional members unlock the tests that need them. */
export interface ConformanceTarget {
  /** Starts the backend before the first test (optional). */
  setup?(): Promise<void>;
  /** A new registry client on the shared backend. The suite closes every client it opened. */
  open(): Promise<Registry>;
  /** How long a failing HTTP check or lapsed TTL may take to show, beyond the check's own timing. */
  settleMs: number;
  /** The smallest HTTP check interval the backend honours (Consul raises < 1 s to 1 s). */
  minCheckIntervalMs: number;
  /** The smallest deregisterCriticalAfterMs the backend honours (a real Consul agent: 1 min, reaped every 30 s). Default 0. */
  minDeregisterCriticalAfterMs?: number;
  /** Config for a separate OS process to reach the same backend; absent for in-process backends. */
  peerProcessConfig?(): PeerRegistryConfig;
  /** Restart the backend the way a real one restarts (Consul dev agent: every registration lost). */
  restart?(): Promise<void>;
  /** Put a malformed or foreign entry for `service` into the backend, as another writer could. */
  injectMalformed?(service: string): Promise<void>;
  /** Reads served by the backend so far (HTTP requests for Consul), to show a watch is not a poll per lookup. */
  backendReads?(): number;
  /** Releases everything the target started. */
  teardown(): Promise<void>;
}
