/** Scenario 7: one service with 10,000 instances (runs in a child process with --expose-gc). */
import { once } from 'node:events';
import { nextMessage, spawnEntry, stopChild } from '../child.js';
import type { ScaleConfig, ScaleResult } from '../scale-child.js';
import { fmt, fmtBytes, fmtInt, fmtMs, fmtRatio, status, table, type BenchContext, type Row, type ScenarioOutcome } from '../scenario.js';
import { startUpstreams, stopUpstreams } from '../upstreams.js';

/**
 * What the profile of this scenario showed (node --cpu-prof, after breakers became lazy): no single
 * function dominates a large update any more; most of it is allocating the new peers and
 * collecting the retired ones. (Before: opossum breakers made eagerly, each subscribing to one
 * shared EventEmitter with linear scans, O(n^2) per update: 511 ms first answer, 2.6 s replaced.)
 */
const UPDATE_NOTE =
  'CPU profile: garbage collection of the 10,000 retired peers and allocation of 10,000 new ones ' +
  '(peer, load tracker, transport and breaker shells, outlier record, map entries) take most of it; ' +
  'breakers no longer matter (compare the breaker: false figures)';

export async function scaleScenario(ctx: BenchContext): Promise<ScenarioOutcome> {
  const p = ctx.params.scale;
  const upstreams = await startUpstreams('scale-', [0]);
  let result: ScaleResult;
  try {
    const config: ScaleConfig = { ...p, upstreamPort: upstreams[0]!.port };
    const child = spawnEntry('scale-child', config, { execArgv: ['--expose-gc'] });
    try {
      result = (await nextMessage<{ type: 'result'; result: ScaleResult }>(child, 'result', 300_000)).result;
      if (child.exitCode === null && child.signalCode === null) await once(child, 'exit');
    } finally {
      await stopChild(child);
    }
  } finally {
    await stopUpstreams(upstreams);
  }
  const n = fmtInt(p.instances);
  const u = result.update;
  const m = result.memory;
  ctx.log(
    `  pick ${fmt(result.pickNs.small, 1)} -> ${fmt(result.pickNs.large, 1)} ns; request ${fmt(result.requestUs.small, 1)} -> ${fmt(result.requestUs.large, 1)} us; update ${fmtMs(u.memoryRegistryEndToEndMs)} (client initial ${fmtMs(u.clientInitialMs)}); ${fmtBytes(m.bytesPerIdlePeer)} per idle peer, ${m.poolsOpen} pools open`,
  );
  const rows: Row[] = [
    {
      id: '7',
      scenario: 'Scale',
      measure: `pick cost, ${n} vs ${p.small} instances (default P2C picker alone)`,
      result: `${fmtRatio(result.pickNs.ratio)} (${fmt(result.pickNs.large, 1)} vs ${fmt(result.pickNs.small, 1)} ns)`,
      target: '<= 2x',
      status: status(result.pickNs.ratio <= 2),
      note:
        `P2C with 1,000 peers: ${fmt(result.pickNs.p2cThousand, 1)} ns; roundRobin(), which walks peers in order: ` +
        `${fmt(result.pickNs.roundRobinSmall, 1)} vs ${fmt(result.pickNs.roundRobinLarge, 1)} ns` +
        (result.pickNs.ratio <= 2
          ? ''
          : '. The pick is O(1) (two random draws, two rows of the metric\'s shared load table, 32 B a peer); what ' +
            'grows is memory latency once the table and the snapshot\'s slot arrays (~400 KB at 10,000) outgrow the nearer CPU caches'),
    },
    {
      id: '7',
      scenario: 'Scale',
      measure: `client CPU per request, ${n} vs ${p.small} instances (whole request path, in-process transport)`,
      result: `${fmtRatio(result.requestUs.ratio)} (${fmt(result.requestUs.large, 1)} vs ${fmt(result.requestUs.small, 1)} us)`,
      target: '<= 2x',
      status: status(result.requestUs.ratio <= 2),
      note:
        `with breaker: false: ${fmtRatio(result.requestUs.noBreaker.ratio)} (${fmt(result.requestUs.noBreaker.large, 1)} vs ` +
        `${fmt(result.requestUs.noBreaker.small, 1)} us)`,
    },
    {
      id: '7',
      scenario: 'Scale',
      measure: `time to apply an update of ${n} instances, one of them new (MemoryRegistry -> client)`,
      result: `${fmtMs(u.memoryRegistryEndToEndMs)} (registry share ${fmtMs(u.memoryRegistryAloneMs)}; client alone, one replaced: ${fmtMs(u.clientOneChangedMs)})`,
      target: '<= 50 ms',
      status: status(u.memoryRegistryEndToEndMs <= 50 && u.clientOneChangedMs <= 50),
      note: `end-to-end runs: ${(u.runs.memoryRegistryEndToEnd ?? []).map((ms) => fmtMs(ms)).join(', ')} (a major GC can land in one)`,
    },
    {
      id: '7',
      scenario: 'Scale',
      measure: `time to apply an update of ${n} instances, all of them new (first answer, or every id replaced)`,
      result: `first ${n}: ${fmtMs(u.clientInitialMs)}; all replaced: ${fmtMs(u.clientAllReplacedMs)} (client alone)`,
      target: '<= 50 ms',
      status: status(u.clientInitialMs <= 50 && u.clientAllReplacedMs <= 50),
      note:
        `with breaker: false: first ${fmtMs(u.noBreakerInitialMs)}, all replaced ${fmtMs(u.noBreakerAllReplacedMs)}` +
        (u.clientInitialMs <= 50 && u.clientAllReplacedMs <= 50 ? '' : `. ${UPDATE_NOTE}`),
    },
    {
      id: '7',
      scenario: 'Scale',
      measure: `memory per idle peer (${n} peers, one request sent)`,
      result: `${fmtBytes(m.bytesPerIdlePeer)} per peer; ${m.poolsOpen} of ${fmtInt(m.peers)} pools open`,
      target: 'pools created lazily',
      status: status(m.poolsOpen <= 1),
      note:
        `without breaker and outlier ejection: ${fmtBytes(m.bytesPerIdlePeerNoBreaker)} per peer. An idle client with ` +
        `${n} peers spends ${fmt(result.idleCpuMsPerSec.withBreakers, 2)} ms CPU per second ` +
        `(breaker: false: ${fmt(result.idleCpuMsPerSec.withoutBreakers, 2)} ms)`,
    },
  ];
  const details = [
    `${n} instances of one service vs ${p.small}. Pick: ${fmtInt(p.picks)} picks of \`p2c().build(peers).pick()\` per timing, ` +
      `${p.pickReps} interleaved pairs of timings, median of their ratios. Request path (${p.reps} interleaved timings, median): \`client.request()\` + \`body.text()\` through an in-process ` +
      `transport (the client's \`transportFactory\` option; no sockets, so the figure is the client's own work), ` +
      `${fmtInt(p.requests)} requests per timing after a warm-up touching every peer. Updates: median of ${p.updates}. ` +
      'Memory: heap after GC (--expose-gc) with the real undici transport, minus the same with ' +
      `${p.small} instances; it includes the validated instance record the watch delivers.`,
    '',
    table(
      ['measure', `${p.small} instances`, `${n} instances`, 'ratio'],
      [
        ['P2C pick (ns CPU)', fmt(result.pickNs.small, 1), fmt(result.pickNs.large, 1), fmtRatio(result.pickNs.ratio)],
        [
          'roundRobin() pick (ns CPU)',
          fmt(result.pickNs.roundRobinSmall, 1),
          fmt(result.pickNs.roundRobinLarge, 1),
          fmtRatio(result.pickNs.roundRobinLarge / result.pickNs.roundRobinSmall),
        ],
        ['client CPU per request (us)', fmt(result.requestUs.small, 1), fmt(result.requestUs.large, 1), fmtRatio(result.requestUs.ratio)],
        [
          'client CPU per request, breaker: false (us)',
          fmt(result.requestUs.noBreaker.small, 1),
          fmt(result.requestUs.noBreaker.large, 1),
          fmtRatio(result.requestUs.noBreaker.ratio),
        ],
      ],
    ),
    '',
    table(
      ['update', 'time'],
      [
        [`MemoryRegistry.addStatic, ${n} listed, client watching (end to end)`, fmtMs(u.memoryRegistryEndToEndMs)],
        [`MemoryRegistry.addStatic, ${n} listed, no-op watch (registry share)`, fmtMs(u.memoryRegistryAloneMs)],
        [`client alone: first ${n} instances (all new peers)`, fmtMs(u.clientInitialMs)],
        [`client alone: ${n} instances, one replaced`, fmtMs(u.clientOneChangedMs)],
        [`client alone: the same ${n} again (new objects, same data)`, fmtMs(u.clientSameAgainMs)],
        [`client alone: ${n} instances all replaced`, fmtMs(u.clientAllReplacedMs)],
        [`client alone, breaker: false: first ${n} instances`, fmtMs(u.noBreakerInitialMs)],
        [`client alone, breaker: false: ${n} instances all replaced`, fmtMs(u.noBreakerAllReplacedMs)],
      ],
    ),
  ].join('\n');
  return { key: 'scale', title: 'Scenario 7: scale', rows, data: { params: p, result }, details };
}
