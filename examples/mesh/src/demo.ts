import { writeFile } from 'node:fs/promises';
import { Agent } from 'node:http';
import { killInstance, slowDown, stopInstance } from './actions.js';
import type { CliArgs } from './args.js';
import { emptySummary, formatSummary, type Check, type DemoSummary, type Share } from './demo-summary.js';
import { watchDeparture } from './demo-watch.js';
import { httpJson } from './http-json.js';
import type { InstanceProcess } from './instance-process.js';
import { LoadGenerator } from './load.js';
import { meshFromArgs, type Mesh } from './mesh.js';
import { fetchStats, listRegistry } from './observe.js';
import { BACKENDS } from './protocol.js';
import { prepareRegistry } from './registry-env.js';
import { installShutdown, type ShutdownResult } from './shutdown.js';

/** The scenario, in ms since the load started. */
const T = {
  beforeStart: 3_000,
  beforeEnd: 9_000,
  slow: 9_000,
  kill: 11_000,
  term: 15_000,
  spawn: 18_000,
  afterStart: 24_000,
  afterEnd: 32_000,
};
const LOAD = { ratePerSec: 40, concurrency: 8, users: 16, requestTimeoutMs: 10_000 };
const SLOW_MS = 200;
/** Generous bounds: they tell "it happened" from "it did not", not fast from slow. */
const LIMITS = { outOfPickerMs: 10_000, leftRegistryMs: 15_000, firstRequestMs: 10_000, exitMs: 15_000 };
/** The whole demo, whatever happens; then everything is killed. */
const DEMO_TIMEOUT_MS = 180_000;
const PROGRESS_EVERY_MS = 4_000;

type Counts = Map<string, { label: string; service: string; served: number }>;

/** `pnpm mesh --demo`: the mesh under steady load while instances are killed, stopped, added and slowed. */
export async function runDemo(args: CliArgs): Promise<number> {
  const startedAt = Date.now();
  const clock = (): string => `${((Date.now() - startedAt) / 1000).toFixed(1).padStart(5)}s`;
  const log = (message: string): void => {
    process.stdout.write(`[demo ${clock()}] ${message}\n`);
  };

  const reg = await prepareRegistry(process.env, { warn: (m) => log(`registry: ${m}`) });
  const summary = emptySummary(reg.kind, args.instances);
  const mesh = meshFromArgs(args, reg, log);
  const shutdown = installShutdown(mesh, { registry: reg, drainMs: args.drainMs, log });
  const agent = new Agent({ keepAlive: true, maxSockets: 8 });
  const watchdog = setTimeout(() => {
    log(`the demo did not finish within ${DEMO_TIMEOUT_MS / 1000} s`);
    void shutdown.request('timed out', 1).then(async (result) => {
      summary.error ??= 'timed out';
      await finish(summary, result, args, startedAt, mesh);
      process.exit(1);
    });
  }, DEMO_TIMEOUT_MS);
  watchdog.unref();

  log(`registry: ${reg.kind} (${reg.where}); starting ${args.instances} instance(s) of each backend and the gateway`);
  try {
    const interrupted = shutdown.requested.then(() => {
      throw new Error('interrupted');
    });
    interrupted.catch(() => {});
    await Promise.race([scenario(mesh, reg.registry, agent, args, summary, log), interrupted]);
  } catch (err) {
    summary.error = (err as Error).message;
    log(`stopped early: ${summary.error}`);
  }
  agent.destroy();
  const result = await shutdown.request('demo finished', summary.error ? 1 : 0);
  clearTimeout(watchdog);
  return finish(summary, result, args, startedAt, mesh);
}

let finished: Promise<number> | undefined;

/** Completes the summary, prints it and writes it, once (the watchdog and the normal end may race). */
function finish(
  summary: DemoSummary,
  result: ShutdownResult,
  args: CliArgs,
  startedAt: number,
  mesh: Mesh,
): Promise<number> {
  finished ??= writeSummary(summary, result, args, startedAt, mesh);
  return finished;
}

async function writeSummary(
  summary: DemoSummary,
  result: ShutdownResult,
  args: CliArgs,
  startedAt: number,
  mesh: Mesh,
): Promise<number> {
  summary.shutdown = {
    code: result.code,
    problems: result.problems,
    leftoverPids: result.report.leftoverPids,
    registryLeft: result.registryLeft,
    durationMs: result.report.durationMs,
    instances: result.report.instances,
  };
  summary.processes = mesh.procs.map((p) => ({ label: p.label, pid: p.pid }));
  summary.checks.push({
    name: 'clean shutdown',
    ok: result.code === 0,
    detail: result.problems.length === 0 ? 'every process exited, none left, registry empty' : result.problems.join('; '),
  });
  if (summary.error) summary.checks.push({ name: 'demo ran to the end', ok: false, detail: summary.error });
  summary.durationMs = Date.now() - startedAt;
  summary.ok = summary.checks.length > 0 && summary.checks.every((c) => c.ok);
  process.stdout.write(formatSummary(summary));
  if (args.summaryJson) {
    await writeFile(args.summaryJson, `${JSON.stringify(summary, null, 2)}\n`);
    process.stdout.write(`summary written to ${args.summaryJson}\n`);
  }
  return summary.ok ? 0 : 1;
}

async function scenario(
  mesh: Mesh,
  registry: import('@peerlb/registry').Registry,
  agent: Agent,
  args: CliArgs,
  summary: DemoSummary,
  log: (m: string) => void,
): Promise<void> {
  await mesh.start();
  const gateway = mesh.gateway?.info;
  if (gateway === undefined) throw new Error('the gateway did not start');
  summary.gatewayUrl = gateway.url;
  log(`gateway: ${gateway.url}`);

  // startService resolves once the first heartbeat made the instance healthy: every one is listed.
  const ours = mesh.procs.map((p) => p.info?.id);
  const all = await listRegistry(registry, 2_000);
  const missing = ours.filter((id) => id !== undefined && ![...all.values()].some((ids) => ids.has(id)));
  if (missing.length > 0) throw new Error(`the registry does not list ${missing.join(', ')}`);

  const counts = async (): Promise<Counts> => {
    const map: Counts = new Map();
    await Promise.all(
      mesh.procs
        .filter((p) => p.alive && p.info !== undefined)
        .map(async (p) => {
          const s = await fetchStats(p.info!.url, 2_000, agent).catch(() => undefined);
          if (s) map.set(s.id, { label: p.label, service: p.service, served: s.served });
        }),
    );
    return map;
  };
  const gatewayPeer = async (service: string, id: string) =>
    (await fetchStats(gateway.url, 2_000, agent).catch(() => undefined))?.client.services[service]?.peers.find((p) => p.id === id);

  const load = new LoadGenerator({
    baseUrl: gateway.url,
    ratePerSec: LOAD.ratePerSec,
    concurrency: LOAD.concurrency,
    maxRequests: Math.ceil((LOAD.ratePerSec * T.afterEnd) / 1000),
    maxDurationMs: T.afterEnd,
    users: LOAD.users,
    requestTimeoutMs: LOAD.requestTimeoutMs,
  });
  log(`load: ${LOAD.ratePerSec} GET/s through the gateway for ${T.afterEnd / 1000} s, up to ${LOAD.concurrency} at once`);
  const loadStart = Date.now();
  load.start();
  const progress = setInterval(() => {
    const s = load.stats;
    log(`load: ${s.sent} sent, ${s.ok} ok, ${s.failed} failed`);
  }, PROGRESS_EVERY_MS);
  progress.unref();
  const at = (ms: number) => sleepUntil(loadStart + ms);

  try {
    await at(T.beforeStart);
    const c0 = await counts();
    await at(T.beforeEnd);
    const c1 = await counts();

    // Slow one pricing instance down: its callers (catalog, orders) should move traffic off it.
    const slowed = need(mesh, 'pricing#1');
    await slowDown(slowed, SLOW_MS, agent);
    log(`slowed ${slowed.label} (${slowed.info!.id}) by ${SLOW_MS} ms per request`);

    await at(T.kill);
    const killed = need(mesh, 'catalog#1');
    const killedBefore = await gatewayPeer('catalog', killed.info!.id);
    const killAt = Date.now();
    killInstance(killed);
    log(`SIGKILL ${killed.label} (${killed.info!.id}): no deregistration, no drain`);
    const killWatch = watchDeparture({
      id: killed.info!.id,
      service: 'catalog',
      callerUrl: gateway.url,
      peerBefore: killedBefore,
      registry,
      since: killAt,
      timeoutMs: 20_000,
      agent,
    });

    await at(T.term);
    const stopped = need(mesh, 'orders#1');
    const stoppedBefore = await gatewayPeer('orders', stopped.info!.id);
    const termAt = Date.now();
    stopInstance(stopped);
    log(`SIGTERM ${stopped.label} (${stopped.info!.id}): it deregisters, drains ${args.drainMs} ms, exits`);
    const termWatch = watchDeparture({
      id: stopped.info!.id,
      service: 'orders',
      callerUrl: gateway.url,
      peerBefore: stoppedBefore,
      registry,
      since: termAt,
      timeoutMs: 20_000,
      agent,
    });

    await at(T.spawn);
    const added = mesh.spawn('catalog');
    const addedInfo = await added.ready;
    log(`new instance ${added.label} (${addedInfo.id}) registered`);

    await at(T.afterStart);
    const c2 = await counts();
    await at(T.afterEnd);
    const c3 = await counts();
    const loadStats = await load.stop();
    clearInterval(progress);
    summary.load = { ...loadStats, ratePerSec: LOAD.ratePerSec, concurrency: LOAD.concurrency };
    log(`load done: ${loadStats.sent} sent, ${loadStats.ok} ok, ${loadStats.failed} failed`);

    summary.windows = { beforeMs: [T.beforeStart, T.beforeEnd], afterMs: [T.afterStart, T.afterEnd] };
    for (const service of BACKENDS) {
      summary.distribution[service] = { before: window(c0, c1, service), after: window(c2, c3, service) };
    }

    const kill = await killWatch;
    summary.killed = { label: killed.label, id: killed.info!.id, signal: 'SIGKILL', ...kill };
    const term = await termWatch;
    const stoppedExit = await Promise.race([stopped.exited, sleepUntil(termAt + LIMITS.exitMs).then(() => undefined)]);
    summary.stopped = {
      label: stopped.label,
      id: stopped.info!.id,
      signal: 'SIGTERM',
      ...term,
      exitAfterMs: stoppedExit ? stoppedExit.at - termAt : null,
      exit: stoppedExit ? (stoppedExit.signal ?? `exit code ${stoppedExit.code}`) : 'still running',
    };

    const addedStats = await fetchStats(addedInfo.url, 2_000, agent).catch(() => undefined);
    const registeredAt = addedStats?.registeredAt ?? null;
    const firstRequestAt = addedStats?.firstRequestAt ?? null;
    summary.added = {
      label: added.label,
      id: addedInfo.id,
      registeredAt,
      firstRequestAt,
      firstRequestAfterMs: registeredAt !== null && firstRequestAt !== null ? firstRequestAt - registeredAt : null,
      shareAfter: summary.distribution.catalog?.after.find((s) => s.id === addedInfo.id)?.share ?? null,
    };
    summary.slowed = {
      label: slowed.label,
      id: slowed.info!.id,
      slowMs: SLOW_MS,
      shareBefore: summary.distribution.pricing?.before.find((s) => s.id === slowed.info!.id)?.share ?? null,
      shareAfter: summary.distribution.pricing?.after.find((s) => s.id === slowed.info!.id)?.share ?? 0,
    };

    // The per-user rate limit, made visible: a burst of twice the limit as one user.
    const n = args.userRatePerSec * 2;
    const limited = await httpJson(`${gateway.url}/limited?caller=demo-alice&n=${n}`, { timeoutMs: 10_000, agent });
    const r = limited.json as
      | { caller: string; sent: number; ok: number; limited: number; retryAfterMs: { min: number; max: number } | null; example: string | null }
      | undefined;
    if (limited.status === 200 && r) {
      summary.rateLimit = { caller: r.caller, sent: r.sent, ok: r.ok, limited: r.limited, retryAfterMs: r.retryAfterMs, example: r.example };
      log(`rate limit: ${r.example ?? 'nothing was limited'}`);
    }
  } finally {
    clearInterval(progress);
    await load.stop();
  }
  summary.checks.push(...evaluate(summary));
}

function evaluate(s: DemoSummary): Check[] {
  const checks: Check[] = [];
  const l = s.load;
  checks.push({
    name: 'no failed GET',
    ok: l !== null && l.failed === 0 && l.sent > 0,
    detail: l ? `${l.failed} of ${l.sent} failed${l.failures[0] ? `; first: ${l.failures[0]}` : ''}` : 'no load ran',
  });
  // A load that did not really run would make every other check meaningless.
  const expected = Math.floor((LOAD.ratePerSec * T.afterEnd) / 1000);
  checks.push({
    name: 'load ran',
    ok: l !== null && l.sent >= expected * 0.9,
    detail: `${l?.sent ?? 0} of ${expected} requests sent`,
  });
  const k = s.killed;
  checks.push({
    name: 'SIGKILLed instance stopped getting traffic',
    ok: k !== null && k.trafficStoppedAfterMs !== null && k.trafficStoppedAfterMs <= LIMITS.outOfPickerMs,
    detail: k
      ? `${k.attemptsAfter ?? '?'} attempt(s) after the kill, the last after ${k.trafficStoppedAfterMs ?? 'never'} ms`
      : 'not run',
  });
  checks.push({
    name: 'SIGKILLed instance taken out of the picker',
    ok: k !== null && k.outOfPickerAfterMs !== null && k.outOfPickerAfterMs <= LIMITS.outOfPickerMs,
    detail: k ? `after ${k.outOfPickerAfterMs ?? 'never'} ms (${k.outOfPickerBecause ?? '-'})` : 'not run',
  });
  checks.push({
    name: 'SIGKILLed instance left the registry (TTL)',
    ok: k !== null && k.leftRegistryAfterMs !== null && k.leftRegistryAfterMs <= LIMITS.leftRegistryMs,
    detail: k ? `after ${k.leftRegistryAfterMs ?? 'never'} ms` : 'not run',
  });
  const t = s.stopped;
  checks.push({
    name: 'SIGTERMed instance deregistered, drained and exited 0',
    ok: t !== null && t.removedAfterMs !== null && t.leftRegistryAfterMs !== null && t.exit === 'exit code 0',
    detail: t
      ? `left the gateway's list after ${t.removedAfterMs ?? 'never'} ms, ${t.exit} after ${t.exitAfterMs ?? '-'} ms`
      : 'not run',
  });
  const a = s.added;
  checks.push({
    name: 'new instance receives traffic',
    ok:
      a !== null &&
      a.firstRequestAfterMs !== null &&
      a.firstRequestAfterMs <= LIMITS.firstRequestMs &&
      (a.shareAfter ?? 0) > 0,
    detail: a ? `first request ${a.firstRequestAfterMs ?? 'never'} ms after registering; share after ${a.shareAfter ?? 0}` : 'not run',
  });
  const w = s.slowed;
  // Judged against an even share rather than its own "before", which P2C may already have made small.
  const evenShare = 1 / s.instancesPerService;
  checks.push({
    name: 'traffic moved off the slow instance',
    ok: w !== null && w.shareBefore !== null && w.shareBefore > 0 && (w.shareAfter ?? 1) <= evenShare / 2,
    detail: w
      ? `share ${w.shareBefore ?? '-'} before, ${w.shareAfter ?? '-'} after (at most ${Math.round((evenShare / 2) * 1000) / 1000}: half an even share)`
      : 'not run',
  });
  const r = s.rateLimit;
  checks.push({
    name: 'per-user rate limit visible',
    ok: r !== null && r.limited > 0 && r.ok > 0 && (r.retryAfterMs?.min ?? 0) > 0,
    detail: r ? `${r.limited} of ${r.sent} limited, retryAfterMs ${JSON.stringify(r.retryAfterMs)}` : 'not run',
  });
  return checks;
}

/** Requests each instance of `service` served between two counts (an instance new in the window counts from 0). */
function window(from: Counts, to: Counts, service: string): Share[] {
  const rows: Share[] = [];
  const ids = new Set([...from.keys(), ...to.keys()]);
  for (const id of ids) {
    const a = from.get(id);
    const b = to.get(id);
    const entry = b ?? a;
    if (entry?.service !== service) continue;
    // Gone before the window ended (killed, stopped): its requests in the window are not known, so
    // it counts as none; its traffic went elsewhere.
    const requests = b === undefined ? 0 : b.served - (a?.served ?? 0);
    rows.push({ label: entry.label, id, requests, share: 0 });
  }
  const total = rows.reduce((n, r) => n + r.requests, 0);
  for (const r of rows) r.share = total > 0 ? Math.round((r.requests / total) * 1000) / 1000 : 0;
  return rows.sort((x, y) => x.label.localeCompare(y.label, 'en', { numeric: true }));
}

function need(mesh: Mesh, label: string): InstanceProcess & { info: NonNullable<InstanceProcess['info']> } {
  const p = mesh.byLabel(label);
  if (p === undefined || p.info === undefined || !p.alive) throw new Error(`${label} is not running`);
  return p as InstanceProcess & { info: NonNullable<InstanceProcess['info']> };
}

function sleepUntil(at: number): Promise<void> {
  const wait = at - Date.now();
  return wait > 0 ? new Promise((resolve) => setTimeout(resolve, wait)) : Promise.resolve();
}
