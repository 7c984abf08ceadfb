/**
 * Scenario 6: how fast a client follows the registry. A client process keeps sending (default
 * client options, registry defaults); an instance process registers itself with `startService`,
 * and stamps, on its own clock, when registration started and when its first request arrived;
 * then deregisters and stamps its last request. On the local registry and on the Consul agent
 * double (test/support/consul-double.ts, started by this script).
 */
import type { ChildProcess } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { startConsulDouble, type ConsulDouble } from '../../../test/support/consul-double.js';
import { nextMessage, send, spawnEntry, stopChild } from '../child.js';
import type { RegistrySpec } from '../load-modes.js';
import type { LoadSpec } from '../load-runner.js';
import { fmtMs, status, table, type BenchContext, type Row, type ScenarioOutcome } from '../scenario.js';
import { median } from '../stats.js';
import { startUpstream, type Upstream } from '../upstreams.js';

const SERVICE = 'discovery';

type Report = {
  readonly type: 'report';
  readonly requests: number;
  readonly registeringAt?: number;
  readonly registeredAt?: number;
  readonly firstRequestAt?: number;
  readonly deregisterAt?: number;
  readonly deregisteredAt?: number;
  readonly lastRequestAt?: number;
  readonly now: number;
};

export interface Trial {
  /** Registration started -> first request received (ms). */
  readonly toFirstRequestMs: number;
  /** Registration confirmed (startService resolved) -> first request (ms). */
  readonly registeredToFirstMs: number;
  /** Deregistration started -> last request received (ms); NaN when it never stopped. */
  readonly toLastRequestMs: number;
  /** Requests still arrived at the end of the observation window. */
  readonly neverStopped: boolean;
}

export interface RegistryResult {
  readonly registry: string;
  readonly trials: Trial[];
  readonly medianToFirstMs: number;
  readonly maxToFirstMs: number;
  readonly medianToLastMs: number;
  readonly maxToLastMs: number;
  readonly neverStopped: number;
}

async function report(child: ChildProcess): Promise<Report> {
  send(child, { type: 'report' });
  return nextMessage<Report>(child, 'report', 5000);
}

async function oneTrial(ctx: BenchContext, env: NodeJS.ProcessEnv, k: number): Promise<Trial> {
  const p = ctx.params.discovery;
  const instance = await startUpstream(
    { id: `disc-new-${k}`, latencyMs: p.upstreamLatencyMs, mode: 'service', service: SERVICE },
    env,
  );
  try {
    const deadline = Date.now() + p.firstRequestTimeoutMs;
    let r = await report(instance.child);
    while (r.firstRequestAt === undefined && Date.now() < deadline) {
      await sleep(10);
      r = await report(instance.child);
    }
    const toFirstRequestMs = r.firstRequestAt === undefined ? Number.NaN : r.firstRequestAt - r.registeringAt!;
    const registeredToFirstMs = r.firstRequestAt === undefined ? Number.NaN : r.firstRequestAt - r.registeredAt!;
    send(instance.child, { type: 'deregister' });
    await nextMessage(instance.child, 'deregistered', 10_000);
    await sleep(p.observeMs);
    const end = await report(instance.child);
    const last = end.lastRequestAt ?? Number.NaN;
    // Still served in the last 10% of the window: the client did not let go.
    const neverStopped = last > end.now - p.observeMs * 0.1;
    const trial: Trial = {
      toFirstRequestMs,
      registeredToFirstMs,
      toLastRequestMs: neverStopped ? Number.NaN : Math.max(0, last - end.deregisterAt!),
      neverStopped,
    };
    return trial;
  } finally {
    await stopChild(instance.child);
  }
}

async function onRegistry(
  ctx: BenchContext,
  name: string,
  registry: RegistrySpec,
  env: NodeJS.ProcessEnv,
): Promise<RegistryResult> {
  const p = ctx.params.discovery;
  const base: Upstream = await startUpstream(
    { id: 'disc-base', latencyMs: p.upstreamLatencyMs, mode: 'service', service: SERVICE },
    env,
  );
  const spec: LoadSpec = {
    label: `discovery client (${name})`,
    mode: { kind: 'peerlb', registry },
    service: SERVICE,
    targets: [],
    concurrency: p.concurrency,
    connections: 32,
    warmupMs: 0,
    durationMs: 0,
    maxRequests: Number.MAX_SAFE_INTEGER,
    timeoutMs: 10_000,
    untilStopped: true,
  };
  const client = spawnEntry('load-runner', spec);
  const trials: Trial[] = [];
  try {
    await nextMessage(client, 'started', 30_000);
    // The client has found the base instance once it receives requests.
    const deadline = Date.now() + 10_000;
    while ((await report(base.child)).requests === 0) {
      if (Date.now() > deadline) throw new Error(`${name}: the client never reached the base instance`);
      await sleep(20);
    }
    for (let k = 0; k < p.trials; k++) {
      const trial = await oneTrial(ctx, env, k);
      trials.push(trial);
      ctx.log(
        `  [${name} ${k + 1}] registration -> first request ${fmtMs(trial.toFirstRequestMs)} (registered -> first ${fmtMs(trial.registeredToFirstMs)}), deregistration -> last request ${trial.neverStopped ? 'never stopped' : fmtMs(trial.toLastRequestMs)}`,
      );
    }
  } finally {
    send(client, { type: 'stop' });
    await nextMessage(client, 'stopped', 15_000).catch(() => {});
    await stopChild(client);
    await stopChild(base.child);
  }
  const first = trials.map((t) => t.toFirstRequestMs);
  const last = trials.map((t) => t.toLastRequestMs);
  return {
    registry: name,
    trials,
    medianToFirstMs: median(first),
    maxToFirstMs: first.some((v) => !Number.isFinite(v)) ? Number.NaN : Math.max(...first),
    medianToLastMs: median(last),
    maxToLastMs: last.some((v) => !Number.isFinite(v)) ? Number.NaN : Math.max(...last),
    neverStopped: trials.filter((t) => t.neverStopped).length,
  };
}

export async function discoveryScenario(ctx: BenchContext): Promise<ScenarioOutcome> {
  const p = ctx.params.discovery;
  const results: RegistryResult[] = [];

  const dir = join(ctx.tmp, 'registry-discovery');
  mkdirSync(dir, { recursive: true });
  const localEnv = { ...process.env, PEERLB_REGISTRY_DIR: dir, CONSUL_HTTP_ADDR: '' };
  results.push(await onRegistry(ctx, 'local registry', { kind: 'local', dir }, localEnv));

  const consul: ConsulDouble = await startConsulDouble();
  try {
    const consulEnv = { ...process.env, CONSUL_HTTP_ADDR: consul.url };
    results.push(await onRegistry(ctx, 'Consul (agent double)', { kind: 'consul', address: consul.url }, consulEnv));
  } finally {
    await consul.stop();
  }

  const rows: Row[] = results.flatMap((r): Row[] => [
    {
      id: '6',
      scenario: 'Discovery',
      measure: `registration -> first request, ${r.registry}`,
      result: `median ${fmtMs(r.medianToFirstMs)}, max ${fmtMs(r.maxToFirstMs)}`,
      target: '<= 1 s',
      status: status(r.maxToFirstMs <= 1000),
      note: '',
    },
    {
      id: '6',
      scenario: 'Discovery',
      measure: `deregistration -> last request, ${r.registry}`,
      result: r.neverStopped > 0 ? `never stopped in ${r.neverStopped} of ${r.trials.length} trials` : `median ${fmtMs(r.medianToLastMs)}, max ${fmtMs(r.maxToLastMs)}`,
      target: '<= 1 s',
      status: status(r.neverStopped === 0 && r.maxToLastMs <= 1000),
      note: '',
    },
  ]);
  const details = [
    `${p.trials} trials per registry; the client sends continuously (${p.concurrency} in flight, upstream latency ` +
      `${p.upstreamLatencyMs} ms) with default options (local registry: fs.watch + 500 ms rescan; Consul: blocking ` +
      `queries). Times are taken in the instance's own process: from the \`registering\` state of startService to ` +
      `the first request it receives, and from \`deregister()\` to the last one (watched for ${p.observeMs} ms).`,
    '',
    table(
      ['registry', 'trial', 'registration -> first request', 'registered -> first request', 'deregistration -> last request'],
      results.flatMap((r) =>
        r.trials.map((t, i) => [
          r.registry,
          String(i + 1),
          fmtMs(t.toFirstRequestMs),
          fmtMs(t.registeredToFirstMs),
          t.neverStopped ? 'never stopped' : fmtMs(t.toLastRequestMs),
        ]),
      ),
    ),
  ].join('\n');
  return { key: 'discovery', title: 'Scenario 6: discovery', rows, data: { params: p, results }, details };
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
