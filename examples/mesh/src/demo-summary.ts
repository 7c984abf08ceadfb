import type { DeadlineDemo, HedgingDemo } from './demo-deadline.js';
import type { DepartureTimes } from './demo-watch.js';
import type { LoadStats } from './load.js';
import type { StoppedInstance } from './mesh.js';

export interface Share {
  label: string;
  id: string;
  requests: number;
  /** Of the service's requests in the window, 0..1. */
  share: number;
}

export interface Check {
  name: string;
  ok: boolean;
  detail: string;
}

/** Everything the demo measured; written as JSON with `--summary-json`. */
export interface DemoSummary {
  ok: boolean;
  error: string | null;
  registry: 'local' | 'consul';
  instancesPerService: number;
  gatewayUrl: string | null;
  durationMs: number;
  load: (LoadStats & { ratePerSec: number; concurrency: number }) | null;
  windows: { beforeMs: [number, number]; afterMs: [number, number] };
  /** Requests served per instance, per service, in the window before the events and after them. */
  distribution: Record<string, { before: Share[]; after: Share[] }>;
  killed: (DepartureTimes & { label: string; id: string; signal: 'SIGKILL' }) | null;
  stopped:
    | (DepartureTimes & { label: string; id: string; signal: 'SIGTERM'; exitAfterMs: number | null; exit: string })
    | null;
  added: {
    label: string;
    id: string;
    registeredAt: number | null;
    firstRequestAt: number | null;
    firstRequestAfterMs: number | null;
    shareAfter: number | null;
  } | null;
  slowed: { label: string; id: string; slowMs: number; shareBefore: number | null; shareAfter: number | null } | null;
  /** Inventory slowed beyond the gateway's budget (issue 15). */
  deadline: DeadlineDemo | null;
  /** A slow-tailed pricing instance and its callers' hedges (issue 15). */
  hedging: HedgingDemo | null;
  rateLimit: {
    caller: string;
    sent: number;
    ok: number;
    limited: number;
    retryAfterMs: { min: number; max: number } | null;
    example: string | null;
  } | null;
  shutdown: {
    code: number;
    problems: string[];
    leftoverPids: number[];
    registryLeft: string[];
    durationMs: number;
    instances: StoppedInstance[];
  } | null;
  /** Every process the demo started, for whoever must make sure none is left. */
  processes: { label: string; pid: number | undefined }[];
  checks: Check[];
}

export function emptySummary(registry: 'local' | 'consul', instances: number): DemoSummary {
  return {
    ok: false,
    error: null,
    registry,
    instancesPerService: instances,
    gatewayUrl: null,
    durationMs: 0,
    load: null,
    windows: { beforeMs: [0, 0], afterMs: [0, 0] },
    distribution: {},
    killed: null,
    stopped: null,
    added: null,
    slowed: null,
    deadline: null,
    hedging: null,
    rateLimit: null,
    shutdown: null,
    processes: [],
    checks: [],
  };
}

const pct = (share: number | null | undefined): string => (share == null ? '-' : `${Math.round(share * 100)}%`);
const ms = (v: number | null | undefined): string => (v == null ? 'not seen' : v < 1000 ? `${v} ms` : `${(v / 1000).toFixed(1)} s`);

function shares(list: Share[]): string {
  return list.length === 0 ? '(no requests)' : list.map((s) => `${s.label} ${pct(s.share)}`).join('  ');
}

/** The summary for people. */
export function formatSummary(s: DemoSummary): string {
  const lines: string[] = [];
  lines.push('');
  lines.push('=== peerlb mesh demo: summary ===');
  lines.push(`registry: ${s.registry}; ${s.instancesPerService} instance(s) per backend; gateway ${s.gatewayUrl ?? '-'}`);
  if (s.load) {
    const l = s.load;
    lines.push(
      `load: ${l.sent} GETs through the gateway in ${(l.durationMs / 1000).toFixed(1)} s ` +
        `(${l.ratePerSec}/s, up to ${l.concurrency} at once): ${l.ok} ok, ${l.failed} failed`,
    );
    for (const f of l.failures.slice(0, 5)) lines.push(`  failed: ${f}`);
  }
  const [b0, b1] = s.windows.beforeMs;
  const [a0, a1] = s.windows.afterMs;
  lines.push(`share of each service's requests per instance (before: ${b0 / 1000}-${b1 / 1000} s of load, after: ${a0 / 1000}-${a1 / 1000} s)`);
  for (const [service, d] of Object.entries(s.distribution)) {
    lines.push(`  ${service.padEnd(10)} before: ${shares(d.before)}`);
    lines.push(`  ${''.padEnd(10)} after:  ${shares(d.after)}`);
  }
  if (s.killed) {
    const k = s.killed;
    lines.push(
      `SIGKILL ${k.label}: the gateway counted ${k.attemptsAfter ?? '?'} more attempt(s) to it from the kill on (${k.failedAttemptsAfter ?? '?'} failed, ` +
        `each retried on another instance), the last ${ms(k.trafficStoppedAfterMs)} after it; ` +
        (k.ejectedOrBroken
          ? 'it was ejected / its breaker opened; '
          : 'not ejected: the failure penalty on its latency estimate was enough for the balancer to avoid it; ') +
        `out of the picker after ${ms(k.outOfPickerAfterMs)} (${k.outOfPickerBecause ?? '-'}), ` +
        `when the registry dropped it (TTL lapsed) after ${ms(k.leftRegistryAfterMs)}`,
    );
  }
  if (s.stopped) {
    const t = s.stopped;
    lines.push(
      `SIGTERM ${t.label}: deregistered, gone from the registry after ${ms(t.leftRegistryAfterMs)} and from the gateway's ` +
        `list after ${ms(t.removedAfterMs)}; drained and exited after ${ms(t.exitAfterMs)} (${t.exit})`,
    );
  }
  if (s.added) {
    const a = s.added;
    lines.push(
      `new ${a.label}: first request ${ms(a.firstRequestAfterMs)} after its registration; ${pct(a.shareAfter)} of catalog's requests afterwards`,
    );
  }
  if (s.slowed) {
    const w = s.slowed;
    lines.push(`slowed ${w.label} by ${w.slowMs} ms: its share of pricing went from ${pct(w.shareBefore)} to ${pct(w.shareAfter)}`);
  }
  if (s.rateLimit) {
    const r = s.rateLimit;
    lines.push(
      `rate limit: caller ${r.caller} sent a burst of ${r.sent}: ${r.ok} ok, ${r.limited} refused with RateLimitedError` +
        (r.retryAfterMs ? ` (retryAfterMs ${r.retryAfterMs.min}..${r.retryAfterMs.max})` : ''),
    );
  }
  if (s.deadline) {
    const d = s.deadline;
    lines.push(
      `deadline: inventory slowed to ${d.slowMs} ms; the gateway's ${d.budgetMs} ms budget answered ${JSON.stringify(d.statuses)}, ` +
        `slowest ${ms(d.maxLatencyMs)}; inventory stopped ${d.inventoryStopped} of ${d.inventoryServed} requests at their deadline`,
    );
  }
  if (s.hedging) {
    const h = s.hedging;
    lines.push(
      `hedging: ${h.label} slow (${h.slowMs} ms) on ${h.sharePercent}% of requests; ${h.requests} requests, p99 ${ms(h.p99Ms)}; ` +
        `hedges sent ${h.sent}, won ${h.won}; ${h.label} saw ${h.tailCancelled} requests cancelled`,
    );
  }
  if (s.shutdown) {
    const d = s.shutdown;
    lines.push(
      d.problems.length === 0
        ? `shutdown: every instance SIGTERMed, exited 0, none left running, registry empty (${ms(d.durationMs)})`
        : `shutdown: ${d.problems.join('; ')}`,
    );
  }
  if (s.error) lines.push(`error: ${s.error}`);
  lines.push('checks:');
  for (const c of s.checks) lines.push(`  ${c.ok ? 'ok  ' : 'FAIL'} ${c.name}: ${c.detail}`);
  lines.push(s.ok ? 'RESULT: PASS' : 'RESULT: FAIL');
  return `${lines.join('\n')}\n`;
}
