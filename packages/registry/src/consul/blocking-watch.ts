import { backoffDelay, sleep } from '../backoff.js';
import { RegistryUnavailableError } from '../errors.js';
import type { RegistryLogger, ServiceInstance } from '../types.js';
import type { WatchEmitter } from '../watch-emitter.js';

export interface BlockingQueryReply {
  /** The raw `X-Consul-Index` header. */
  index: string | undefined;
  body: unknown;
}

export interface BlockingWatchOptions {
  /** What is watched, for log lines. */
  label: string;
  /** One read: blocking on `index` when given, an immediate full read otherwise. */
  query(index: bigint | undefined, signal: AbortSignal): Promise<BlockingQueryReply>;
  /** Validated instances from a reply body; throws when the body is unusable. */
  toInstances(body: unknown): ServiceInstance[];
  emitter: WatchEmitter;
  minIntervalMs: number;
  backoff: { minMs: number; maxMs: number };
  logger: RegistryLogger;
  signal: AbortSignal;
  /**
   * A counter that moves when the connection to the agent was lost between queries. When it moved
   * since the last reply, the next read is a full one: an agent that restarted while the loop was
   * pausing has a lower index, and blocking on the old one would hold for the whole wait.
   */
  connectionEpoch?: () => number;
  random?: () => number;
}

/**
 * An `X-Consul-Index` we can block on. Missing, malformed or 0 is an error, not "start over":
 * blocking on 0 returns at once, and a server that keeps answering 0 would spin the loop.
 */
export function parseConsulIndex(raw: string | undefined, what: string): bigint {
  if (raw === undefined || !/^\d{1,20}$/.test(raw.trim())) {
    throw new RegistryUnavailableError(`${what}: ${raw === undefined ? 'no' : 'a malformed'} X-Consul-Index header`);
  }
  const index = BigInt(raw.trim());
  if (index === 0n) throw new RegistryUnavailableError(`${what}: X-Consul-Index 0, which cannot be blocked on`);
  return index;
}

/**
 * Consul's blocking-query loop for one watch. Index rules (Consul docs, node-consul's watch):
 * the first read carries no index; each next one blocks on the last index; an index that went
 * backwards (agent restarted, state restored) resets to a full read; a reply is not proof of
 * change (the emitter drops repeats). Query starts are at least `minIntervalMs` apart, so a
 * service that changes on every reply cannot turn the loop into a busy poll. Errors go to the
 * listener and are retried after a full-jitter backoff that resets on success. After an error,
 * or when the connection to the agent dropped while the loop paused, the next read is a full one:
 * the old index may belong to an agent that is gone. Resolves when `signal` aborts.
 */
export async function runBlockingWatch(options: BlockingWatchOptions): Promise<void> {
  const { signal, emitter } = options;
  let index: bigint | undefined;
  let attempt = 0;
  let lastStart = Number.NEGATIVE_INFINITY;
  const epoch = options.connectionEpoch ?? (() => 0);
  let epochAtReply = epoch();
  while (!signal.aborted) {
    const spacing = lastStart + options.minIntervalMs - performance.now();
    if (spacing > 0 && !(await pause(spacing, signal))) return;
    lastStart = performance.now();
    if (epoch() !== epochAtReply) index = undefined;
    try {
      const reply = await options.query(index, signal);
      epochAtReply = epoch();
      const next = parseConsulIndex(reply.index, options.label);
      const instances = options.toInstances(reply.body);
      index = index !== undefined && next < index ? undefined : next;
      attempt = 0;
      emitter.instances(instances);
    } catch (err) {
      if (signal.aborted) return;
      const error = err instanceof Error ? err : new Error(String(err));
      if (attempt === 0) options.logger.warn(`${options.label} failed, retrying with backoff: ${error.message}`);
      index = undefined;
      emitter.error(error);
      if (!(await pause(backoffDelay(attempt++, options.backoff, options.random), signal))) return;
    }
  }
}

/** False when the signal ended the wait. */
async function pause(ms: number, signal: AbortSignal): Promise<boolean> {
  try {
    await sleep(ms, signal);
    return true;
  } catch {
    return false;
  }
}
