import type { ChildProcess } from 'node:child_process';
import { nextMessage, spawnEntry, stopChild } from './child.js';
import type { UpstreamConfig } from './upstream.js';

export interface Upstream {
  readonly id: string;
  readonly port: number;
  readonly pid: number;
  readonly latencyMs: number;
  readonly child: ChildProcess;
}

/** A target as load runners see it: where to send, and the id the upstream answers with. */
export interface Target {
  readonly id: string;
  readonly port: number;
}

export async function startUpstream(config: UpstreamConfig, env?: NodeJS.ProcessEnv): Promise<Upstream> {
  const child = spawnEntry('upstream', config, env ? { env } : {});
  try {
    const ready = await nextMessage<{ type: 'ready'; port: number; pid: number }>(child, 'ready', 30_000);
    return { id: config.id, port: ready.port, pid: ready.pid, latencyMs: config.latencyMs, child };
  } catch (err) {
    await stopChild(child);
    throw err;
  }
}

/** One plain upstream process per latency, started in parallel; ids `<prefix>0`, `<prefix>1`, ... */
export async function startUpstreams(prefix: string, latencies: readonly number[]): Promise<Upstream[]> {
  const started = await Promise.allSettled(
    latencies.map((latencyMs, i) => startUpstream({ id: `${prefix}${i}`, latencyMs, mode: 'plain' })),
  );
  const ok = started.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
  const failed = started.find((s): s is PromiseRejectedResult => s.status === 'rejected');
  if (failed) {
    await stopUpstreams(ok);
    throw failed.reason;
  }
  return ok;
}

export async function stopUpstreams(upstreams: readonly Upstream[]): Promise<void> {
  await Promise.all(upstreams.map((u) => stopChild(u.child)));
}

export function targetsOf(upstreams: readonly Upstream[]): Target[] {
  return upstreams.map((u) => ({ id: u.id, port: u.port }));
}
