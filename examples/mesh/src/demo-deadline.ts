import type { Agent } from 'node:http';
import type { Check } from './demo-summary.js';
import { httpJson } from './http-json.js';
import type { InstanceProcess } from './instance-process.js';
import type { Mesh } from './mesh.js';
import { fetchStats } from './observe.js';
import { GATEWAY_BUDGET_MS, type InstanceStats } from './protocol.js';

/** Slower than the gateway's budget, so every quote runs out of time at inventory. */
const INVENTORY_SLOW_MS = 1_500;
const DEADLINE_REQUESTS = 6;
/** The gateway answers within its budget, give or take a loaded machine's scheduling. */
const BUDGET_SLACK_MS = 400;
const TAIL_SLOW_MS = 400;
const TAIL_SHARE_PERCENT = 30;
const HEDGE_BATCH = 50;
const HEDGE_MAX_BATCHES = 8;

export interface DeadlineDemo {
  budgetMs: number;
  slowMs: number;
  statuses: Record<string, number>;
  maxLatencyMs: number;
  /** Requests the inventory instances started, and of those, stopped at their deadline. */
  inventoryServed: number;
  inventoryStopped: number;
  /** Answers finished after their budget (work nobody waited for), per service. */
  late: { orders: number; inventory: number };
  /** Requests whose caller gave up before the answer, per service. */
  cancelled: { orders: number; inventory: number };
}

export interface HedgingDemo {
  label: string;
  slowMs: number;
  sharePercent: number;
  requests: number;
  failed: number;
  p99Ms: number;
  /** Hedges of the calls to pricing, summed over its callers. */
  sent: number;
  won: number;
  cancelled: number;
  /** Requests of the slow-tailed instance whose caller went away (the hedges' losers). */
  tailCancelled: number;
}

type Stats = Map<InstanceProcess, InstanceStats>;

async function statsOf(procs: readonly InstanceProcess[], agent: Agent): Promise<Stats> {
  const out: Stats = new Map();
  await Promise.all(
    procs.map(async (p) => {
      const s = await fetchStats(p.info!.url, 2_000, agent).catch(() => undefined);
      if (s) out.set(p, s);
    }),
  );
  return out;
}

function sum(before: Stats, after: Stats, pick: (s: InstanceStats) => number): number {
  let n = 0;
  for (const [p, s] of after) n += pick(s) - (before.has(p) ? pick(before.get(p)!) : 0);
  return n;
}

function running(mesh: Mesh, service: string): InstanceProcess[] {
  return mesh.procs.filter((p) => p.service === service && p.alive && p.info !== undefined);
}

/**
 * Inventory slowed beyond the gateway's budget: each quote must come back from the gateway within
 * its budget (504), and orders and inventory must stop the work whose deadline passed.
 */
export async function runDeadlineDemo(
  mesh: Mesh,
  gatewayUrl: string,
  agent: Agent,
  log: (m: string) => void,
): Promise<{ result: DeadlineDemo; checks: Check[] }> {
  const inventory = running(mesh, 'inventory');
  const orders = running(mesh, 'orders');
  const before = await statsOf([...inventory, ...orders], agent);
  await Promise.all(inventory.map((p) => httpJson(`${p.info!.url}/admin/slow?ms=${INVENTORY_SLOW_MS}`, { method: 'POST', timeoutMs: 2_000, agent })));
  log(`deadline: inventory slowed to ${INVENTORY_SLOW_MS} ms, beyond the gateway's ${GATEWAY_BUDGET_MS} ms budget`);
  const statuses: Record<string, number> = {};
  let maxLatencyMs = 0;
  try {
    for (let round = 0; round < DEADLINE_REQUESTS / 2; round++) {
      await Promise.all(
        [0, 1].map(async () => {
          const started = Date.now();
          const answer = await httpJson(`${gatewayUrl}/api/quote?sku=tea-001&qty=1&user=deadline-demo`, { timeoutMs: 10_000, agent }).catch(
            () => ({ status: 0 }),
          );
          maxLatencyMs = Math.max(maxLatencyMs, Date.now() - started);
          statuses[String(answer.status)] = (statuses[String(answer.status)] ?? 0) + 1;
        }),
      );
    }
    // Let the stopped work and cancelled requests be counted before reading.
    await new Promise((resolve) => setTimeout(resolve, 300));
  } finally {
    await Promise.all(inventory.map((p) => httpJson(`${p.info!.url}/admin/slow?ms=0`, { method: 'POST', timeoutMs: 2_000, agent }).catch(() => undefined)));
  }
  const after = await statsOf([...inventory, ...orders], agent);
  const only = (procs: InstanceProcess[], s: Stats): Stats => new Map([...s].filter(([p]) => procs.includes(p)));
  const [invB, invA, ordB, ordA] = [only(inventory, before), only(inventory, after), only(orders, before), only(orders, after)];
  const result: DeadlineDemo = {
    budgetMs: GATEWAY_BUDGET_MS,
    slowMs: INVENTORY_SLOW_MS,
    statuses,
    maxLatencyMs,
    inventoryServed: sum(invB, invA, (s) => s.served),
    inventoryStopped: sum(invB, invA, (s) => s.stoppedByDeadline ?? 0),
    late: { orders: sum(ordB, ordA, (s) => s.deadline?.late ?? 0), inventory: sum(invB, invA, (s) => s.deadline?.late ?? 0) },
    cancelled: {
      orders: sum(ordB, ordA, (s) => s.deadline?.cancelled ?? 0),
      inventory: sum(invB, invA, (s) => s.deadline?.cancelled ?? 0),
    },
  };
  log(
    `deadline: answers ${JSON.stringify(statuses)}, slowest ${maxLatencyMs} ms; inventory stopped ${result.inventoryStopped} of ${result.inventoryServed} ` +
      `requests at their deadline; late answers: orders ${result.late.orders}, inventory ${result.late.inventory}`,
  );
  const checks: Check[] = [
    {
      name: 'deadline: the gateway answers within its budget',
      ok: statuses['504'] === DEADLINE_REQUESTS && maxLatencyMs <= GATEWAY_BUDGET_MS + BUDGET_SLACK_MS,
      detail: `${DEADLINE_REQUESTS} quotes with inventory at ${INVENTORY_SLOW_MS} ms: ${JSON.stringify(statuses)}, slowest ${maxLatencyMs} ms (budget ${GATEWAY_BUDGET_MS} ms)`,
    },
    {
      name: 'deadline: no work after the deadline',
      ok: result.inventoryServed > 0 && result.inventoryStopped === result.inventoryServed,
      detail:
        `inventory stopped ${result.inventoryStopped} of the ${result.inventoryServed} requests it started; requests cancelled by their caller: ` +
        `orders ${result.cancelled.orders}, inventory ${result.cancelled.inventory}; answers after the budget: orders ${result.late.orders}, inventory ${result.late.inventory}`,
    },
  ];
  return { result, checks };
}

/**
 * One pricing instance with a slow tail: its callers (catalog, orders) hedge their calls to
 * pricing, the hedges win, and the slow instance sees the losers cancelled.
 */
export async function runHedgingDemo(
  mesh: Mesh,
  gatewayUrl: string,
  agent: Agent,
  log: (m: string) => void,
): Promise<{ result: HedgingDemo; checks: Check[] }> {
  const pricing = running(mesh, 'pricing');
  const tail = pricing[pricing.length - 1];
  if (tail === undefined) throw new Error('no pricing instance is running');
  const callers = [...running(mesh, 'catalog'), ...running(mesh, 'orders')];
  const before = await statsOf([...callers, tail], agent);
  await httpJson(`${tail.info!.url}/admin/slow?ms=${TAIL_SLOW_MS}&share=${TAIL_SHARE_PERCENT}`, { method: 'POST', timeoutMs: 2_000, agent });
  log(`hedging: ${tail.label} answers ${TAIL_SHARE_PERCENT}% of its requests ${TAIL_SLOW_MS} ms late`);
  const latencies: number[] = [];
  let failed = 0;
  let after = before;
  try {
    for (let batch = 0; batch < HEDGE_MAX_BATCHES; batch++) {
      let next = 0;
      await Promise.all(
        Array.from({ length: 6 }, async () => {
          while (next++ < HEDGE_BATCH) {
            const started = Date.now();
            const answer = await httpJson(`${gatewayUrl}/api/products/tea-001?user=hedge-demo-${next % 8}`, { timeoutMs: 10_000, agent }).catch(
              () => ({ status: 0 }),
            );
            latencies.push(Date.now() - started);
            if (answer.status !== 200) failed++;
          }
        }),
      );
      after = await statsOf([...callers, tail], agent);
      if (hedgeSum(before, after, 'won') >= 3) break;
    }
  } finally {
    await httpJson(`${tail.info!.url}/admin/slow?ms=0`, { method: 'POST', timeoutMs: 2_000, agent }).catch(() => undefined);
  }
  await new Promise((resolve) => setTimeout(resolve, 200));
  after = await statsOf([...callers, tail], agent);
  latencies.sort((a, b) => a - b);
  const tailOnly = (s: Stats): Stats => new Map([...s].filter(([p]) => p === tail));
  const result: HedgingDemo = {
    label: tail.label,
    slowMs: TAIL_SLOW_MS,
    sharePercent: TAIL_SHARE_PERCENT,
    requests: latencies.length,
    failed,
    p99Ms: latencies[Math.max(0, Math.ceil(latencies.length * 0.99) - 1)] ?? 0,
    sent: hedgeSum(before, after, 'sent'),
    won: hedgeSum(before, after, 'won'),
    cancelled: hedgeSum(before, after, 'cancelled'),
    tailCancelled: sum(tailOnly(before), tailOnly(after), (s) => s.deadline?.cancelled ?? 0),
  };
  log(
    `hedging: ${result.requests} products, ${failed} failed, p99 ${result.p99Ms} ms; pricing's callers sent ${result.sent} hedges, ` +
      `${result.won} won; ${tail.label} saw ${result.tailCancelled} requests cancelled`,
  );
  return {
    result,
    checks: [
      {
        name: 'hedging: hedges win against a slow-tailed instance, losers cancelled',
        ok: failed === 0 && result.won > 0 && result.tailCancelled > 0,
        detail:
          `${result.requests} requests, ${failed} failed, p99 ${result.p99Ms} ms (the slow tail: ${TAIL_SLOW_MS} ms); ` +
          `hedges sent ${result.sent}, won ${result.won}, attempts cancelled ${result.cancelled}; ${tail.label} saw ${result.tailCancelled} cancelled`,
      },
    ],
  };
}

function hedgeSum(before: Stats, after: Stats, field: 'sent' | 'won' | 'cancelled'): number {
  return sum(before, after, (s) => s.client.services.pricing?.hedges?.[field] ?? 0);
}
