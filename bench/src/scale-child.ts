/**
 * Scenario 7, in its own process (run with --expose-gc): one service with 10,000 instances.
 *
 * - pick cost: the bare default picker (`p2c().build(peers).pick()`), and a whole `client.request()`
 *   through the mock transport, each with 10 and with 10,000 peers, interleaved;
 * - time to apply an update of 10,000 instances: end to end through MemoryRegistry (`addStatic`
 *   delivers synchronously to the client's watch), and the client's share alone (PushRegistry);
 * - memory per idle peer, with the real undici transport: pools are created on first use only.
 */
import { createClient, p2c, peakEwma, roundRobin, type Balancer, type Client, type PickablePeer } from '@peerlb/client';
import { MemoryRegistry, silentLogger, type ServiceInstance } from '@peerlb/registry';
import { childConfig, failChild, toParentFlushed } from './child.js';
import { mockDispatchersCreated, mockTransport } from './mock-transport.js';
import type { ScaleParams } from './params.js';
import { PushRegistry } from './push-registry.js';
import { median } from './stats.js';

export interface ScaleConfig extends ScaleParams {
  /** A real upstream, for the memory probe's one request. */
  readonly upstreamPort: number;
}

export interface ScaleResult {
  readonly pickNs: {
    readonly small: number;
    readonly large: number;
    readonly ratio: number;
    readonly runs: number[][];
    /** P2C with 1,000 peers, and roundRobin() (sequential walk) with small/large: where the cost comes from. */
    readonly p2cThousand: number;
    readonly roundRobinSmall: number;
    readonly roundRobinLarge: number;
  };
  readonly requestUs: {
    readonly small: number;
    readonly large: number;
    readonly ratio: number;
    readonly runs: number[][];
    /** The same with `breaker: false`: small, large, ratio. */
    readonly noBreaker: { readonly small: number; readonly large: number; readonly ratio: number };
  };
  readonly update: {
    /** MemoryRegistry.addStatic with the client watching: registry validation + client apply (ms). */
    readonly memoryRegistryEndToEndMs: number;
    /** The same addStatic with only a no-op watch: the registry's own share (ms). */
    readonly memoryRegistryAloneMs: number;
    /** Client alone: first delivery of N new instances (ms). */
    readonly clientInitialMs: number;
    /** Client alone: N instances, one replaced (ms). */
    readonly clientOneChangedMs: number;
    /** Client alone: N instances, all replaced by N new ones (ms). */
    readonly clientAllReplacedMs: number;
    /** Client alone: the same N instances delivered again as new objects (ms). */
    readonly clientSameAgainMs: number;
    /** The same first delivery and full replacement with `breaker: false` (ms). */
    readonly noBreakerInitialMs: number;
    readonly noBreakerAllReplacedMs: number;
    readonly runs: Record<string, number[]>;
  };
  readonly memory: {
    readonly bytesPerIdlePeer: number;
    readonly bytesPerIdlePeerNoBreaker: number;
    readonly poolsOpen: number;
    readonly peers: number;
    readonly mockPoolsCreated: number;
  };
  /** CPU an idle client with N peers spends per second of wall time (ms), with and without breakers. */
  readonly idleCpuMsPerSec: { readonly withBreakers: number; readonly withoutBreakers: number };
}

const config = childConfig<ScaleConfig>();
const SERVICE = 'scale';
const gc = (globalThis as { gc?: () => void }).gc;

function instancesOf(n: number, prefix = 'i', port = (i: number) => 10_000 + (i % 50_000)): ServiceInstance[] {
  return Array.from({ length: n }, (_, i) => ({
    id: `${prefix}-${String(i).padStart(6, '0')}`,
    service: SERVICE,
    address: '127.0.0.1',
    port: port(i),
    tags: [],
    meta: {},
  }));
}

// --- pick cost -----------------------------------------------------------------------------------

function timePicks(n: number, picks: number, balancer: Balancer = p2c()): number {
  // The balancer's own metric makes the trackers, as in the client (createClient uses it).
  const metric = balancer.metric ?? peakEwma();
  const peers: PickablePeer[] = instancesOf(n).map((instance) => {
    const tracker = metric.create();
    // Give each peer a latency sample so loads differ, as they would under traffic.
    const done = tracker.start(0);
    done({ kind: 'success', latencyMs: 1 + (instance.port % 7) }, 1);
    return { id: instance.id, instance, tracker };
  });
  const picker = balancer.build(peers);
  const ctx = { random: Math.random, now: performance.now() };
  let sink = 0;
  for (let i = 0; i < 20_000; i++) sink += picker.pick(ctx).kind.length; // warm the JIT
  // Collect the set-up's garbage now: process CPU counts GC threads, and a collection of the
  // previous timing's 10,000 peers would otherwise be billed to this one.
  gc?.();
  // CPU time, not wall time: on a shared machine, time spent descheduled is not the picker's.
  const cpu0 = process.cpuUsage();
  for (let i = 0; i < picks; i++) sink += picker.pick(ctx).kind.length;
  const cpu = process.cpuUsage(cpu0);
  const ns = ((cpu.user + cpu.system) * 1000) / picks;
  if (sink === 0) throw new Error('unreachable');
  return ns;
}

async function drive(client: Client, requests: number, concurrency = 8): Promise<number> {
  let left = requests;
  const options = { service: SERVICE, path: '/' };
  const worker = async () => {
    while (left-- > 0) {
      const res = await client.request(options);
      await res.body.text();
    }
  };
  const cpu0 = process.cpuUsage();
  await Promise.all(Array.from({ length: concurrency }, worker));
  const cpu = process.cpuUsage(cpu0);
  return (cpu.user + cpu.system) / requests;
}

function mockClient(n: number, breakers = true): Client {
  const registry = new MemoryRegistry({ logger: silentLogger, instances: instancesOf(n) });
  return createClient({
    registry,
    closeRegistry: true,
    transportFactory: mockTransport,
    logger: silentLogger,
    ...(breakers ? {} : { breaker: false as const }),
  });
}

// --- update apply ----------------------------------------------------------------------------------

async function updates(n: number, rounds: number): Promise<ScaleResult['update']> {
  const runs: Record<string, number[]> = {
    memoryRegistryEndToEnd: [],
    memoryRegistryAlone: [],
    clientInitial: [],
    clientOneChanged: [],
    clientAllReplaced: [],
    clientSameAgain: [],
    noBreakerInitial: [],
    noBreakerAllReplaced: [],
  };
  // End to end: addStatic notifies the watch synchronously, and the client applies it in that call.
  {
    const registry = new MemoryRegistry({ logger: silentLogger, instances: instancesOf(n) });
    const client = createClient({ registry, transportFactory: mockTransport, logger: silentLogger });
    await (await client.request({ service: SERVICE, path: '/' })).body.text();
    for (let r = 0; r < rounds; r++) {
      const t = performance.now();
      registry.addStatic({ id: `added-${r}`, service: SERVICE, address: '127.0.0.1', port: 9000 + r });
      runs.memoryRegistryEndToEnd!.push(performance.now() - t);
    }
    const peers = client.stats().services[SERVICE]?.peers.length;
    if (peers !== n + rounds) throw new Error(`client has ${peers} peers, expected ${n + rounds}`);
    await client.close();
    await registry.close();
  }
  {
    const registry = new MemoryRegistry({ logger: silentLogger, instances: instancesOf(n) });
    let delivered = 0;
    const handle = registry.watch(SERVICE, () => delivered++);
    await Promise.resolve();
    for (let r = 0; r < rounds; r++) {
      const t = performance.now();
      registry.addStatic({ id: `added-${r}`, service: SERVICE, address: '127.0.0.1', port: 9000 + r });
      runs.memoryRegistryAlone!.push(performance.now() - t);
    }
    if (delivered !== rounds + 1) throw new Error(`no-op watch saw ${delivered} updates, expected ${rounds + 1}`);
    handle.close();
    await registry.close();
  }
  // The client alone, with default options and with breakers off.
  for (let r = 0; r < rounds; r++) {
    for (const breaker of [true, false]) {
      const registry = new PushRegistry([]);
      const client = createClient({
        registry,
        transportFactory: mockTransport,
        logger: silentLogger,
        ...(breaker ? {} : { breaker: false as const }),
      });
      // Opens the watch; the empty first answer makes this call fail with NO_PEERS, as it should.
      await client.request({ service: SERVICE, path: '/' }).then(
        () => {
          throw new Error('expected NO_PEERS');
        },
        (err: { code?: string }) => {
          if (err.code !== 'PEERLB_NO_PEERS') throw err;
        },
      );
      const base = instancesOf(n, `r${r}`);
      const initial = registry.push(base);
      const oneChanged = base.slice();
      oneChanged[n >> 1] = { ...base[n >> 1]!, id: `${base[n >> 1]!.id}-new` };
      const one = registry.push(oneChanged);
      const same = registry.push(oneChanged.map((i) => ({ ...i })));
      const all = registry.push(instancesOf(n, `r${r}-x`));
      const peers = client.stats().services[SERVICE]?.peers.length;
      if (peers !== n) throw new Error(`client has ${peers} peers, expected ${n}`);
      await client.close();
      if (breaker) {
        runs.clientInitial!.push(initial);
        runs.clientOneChanged!.push(one);
        runs.clientSameAgain!.push(same);
        runs.clientAllReplaced!.push(all);
      } else {
        runs.noBreakerInitial!.push(initial);
        runs.noBreakerAllReplaced!.push(all);
      }
    }
  }
  return {
    memoryRegistryEndToEndMs: median(runs.memoryRegistryEndToEnd!),
    memoryRegistryAloneMs: median(runs.memoryRegistryAlone!),
    clientInitialMs: median(runs.clientInitial!),
    clientOneChangedMs: median(runs.clientOneChanged!),
    clientAllReplacedMs: median(runs.clientAllReplaced!),
    clientSameAgainMs: median(runs.clientSameAgain!),
    noBreakerInitialMs: median(runs.noBreakerInitial!),
    noBreakerAllReplacedMs: median(runs.noBreakerAllReplaced!),
    runs,
  };
}

// --- memory ------------------------------------------------------------------------------------------

async function settledHeap(): Promise<number> {
  for (let i = 0; i < 4; i++) {
    gc!();
    await new Promise((r) => setImmediate(r));
  }
  return process.memoryUsage().heapUsed;
}

/** Heap the client adds for a service of `n` idle instances (after one real request). */
async function clientHeap(n: number, withBreakers: boolean): Promise<{ bytes: number; poolsOpen: number; peers: number }> {
  const registry = new MemoryRegistry({
    logger: silentLogger,
    instances: instancesOf(n, 'm', () => config.upstreamPort),
  });
  const before = await settledHeap();
  const client = createClient({
    registry,
    logger: silentLogger,
    ...(withBreakers ? {} : { breaker: false as const, outlier: false as const }),
  });
  await (await client.request({ service: SERVICE, path: '/' })).body.text();
  const after = await settledHeap();
  const peers = client.stats().services[SERVICE]!.peers;
  const result = { bytes: after - before, poolsOpen: peers.filter((p) => p.poolOpen).length, peers: peers.length };
  await client.close();
  await registry.close();
  return result;
}

async function memory(n: number, small: number): Promise<ScaleResult['memory']> {
  await clientHeap(small, true); // warm-up: module state, JIT
  const s = await clientHeap(small, true);
  const l = await clientHeap(n, true);
  const sNb = await clientHeap(small, false);
  const lNb = await clientHeap(n, false);
  return {
    bytesPerIdlePeer: (l.bytes - s.bytes) / (n - small),
    bytesPerIdlePeerNoBreaker: (lNb.bytes - sNb.bytes) / (n - small),
    poolsOpen: l.poolsOpen,
    peers: l.peers,
    mockPoolsCreated: mockDispatchersCreated(),
  };
}

/** CPU (ms per second) a client with `n` peers and no traffic spends, after one request. */
async function idleCpu(n: number, withBreakers: boolean, windowMs: number): Promise<number> {
  const registry = new MemoryRegistry({ logger: silentLogger, instances: instancesOf(n) });
  const client = createClient({
    registry,
    transportFactory: mockTransport,
    logger: silentLogger,
    ...(withBreakers ? {} : { breaker: false as const }),
  });
  await (await client.request({ service: SERVICE, path: '/' })).body.text();
  // Leave nothing of the set-up to collect inside the window: only what idling itself costs.
  await settledHeap();
  await new Promise((r) => setTimeout(r, 1200));
  const cpu0 = process.cpuUsage();
  await new Promise((r) => setTimeout(r, windowMs));
  const cpu = process.cpuUsage(cpu0);
  await client.close();
  await registry.close();
  return (cpu.user + cpu.system) / windowMs;
}

async function main(): Promise<void> {
  if (!gc) throw new Error('run with --expose-gc');
  const { instances: n, small } = config;

  const pickRuns: number[][] = [];
  for (let r = 0; r < config.pickReps; r++) pickRuns.push([timePicks(small, config.picks), timePicks(n, config.picks)]);
  const p2cThousand = timePicks(Math.min(1000, n), config.picks);
  const roundRobinSmall = timePicks(small, config.picks, roundRobin());
  const roundRobinLarge = timePicks(n, config.picks, roundRobin());
  const pickSmall = median(pickRuns.map((x) => x[0]!));
  const pickLarge = median(pickRuns.map((x) => x[1]!));

  const smallClient = mockClient(small);
  const largeClient = mockClient(n);
  const smallBare = mockClient(small, false);
  const largeBare = mockClient(n, false);
  const clients = [smallClient, largeClient, smallBare, largeBare];
  // Warm-up: every peer of the large clients picked a few times, its (mock) pool created.
  for (const client of clients) await drive(client, Math.max(config.requests, n * 3));
  const requestRuns: number[][] = [];
  for (let r = 0; r < config.reps; r++) {
    const run: number[] = [];
    for (const client of clients) run.push(await drive(client, config.requests));
    requestRuns.push(run);
  }
  for (const client of clients) await client.close();
  const reqSmall = median(requestRuns.map((x) => x[0]!));
  const reqLarge = median(requestRuns.map((x) => x[1]!));

  const update = await updates(n, config.updates);
  const mem = await memory(n, small);
  const idleWindowMs = config.instances >= 10_000 ? 3000 : 500;
  const idleCpuMsPerSec = {
    withBreakers: await idleCpu(n, true, idleWindowMs),
    withoutBreakers: await idleCpu(n, false, idleWindowMs),
  };

  const result: ScaleResult = {
    pickNs: {
      small: pickSmall,
      large: pickLarge,
      ratio: median(pickRuns.map((x) => x[1]! / x[0]!)),
      runs: pickRuns,
      p2cThousand,
      roundRobinSmall,
      roundRobinLarge,
    },
    requestUs: {
      small: reqSmall,
      large: reqLarge,
      ratio: median(requestRuns.map((x) => x[1]! / x[0]!)),
      runs: requestRuns,
      noBreaker: {
        small: median(requestRuns.map((x) => x[2]!)),
        large: median(requestRuns.map((x) => x[3]!)),
        ratio: median(requestRuns.map((x) => x[3]! / x[2]!)),
      },
    },
    update,
    memory: mem,
    idleCpuMsPerSec,
  };
  await toParentFlushed({ type: 'result', result });
}

main().then(() => process.exit(0), failChild);
