/** Scenario 8: 100,000 distinct callers through the client's rate limiter (child process, --expose-gc). */
import { once } from 'node:events';
import type { CallersResult } from '../callers-child.js';
import { nextMessage, spawnEntry, stopChild } from '../child.js';
import { fmt, fmtBytes, fmtInt, status, table, type BenchContext, type Row, type ScenarioOutcome } from '../scenario.js';

export async function callersScenario(ctx: BenchContext): Promise<ScenarioOutcome> {
  const p = ctx.params.callers;
  const child = spawnEntry('callers-child', p, { execArgv: ['--expose-gc'] });
  let result: CallersResult;
  try {
    result = (await nextMessage<{ type: 'result'; result: CallersResult }>(child, 'result', 300_000)).result;
    if (child.exitCode === null && child.signalCode === null) await once(child, 'exit');
  } finally {
    await stopChild(child);
  }
  const cap = String(p.maxCallers);
  const last = String(p.callers);
  const boundedAtCap = result.bounded[cap] ?? Number.NaN;
  const boundedAtEnd = result.bounded[last] ?? Number.NaN;
  const unboundedAtCap = result.unbounded[cap] ?? Number.NaN;
  const unboundedAtEnd = result.unbounded[last] ?? Number.NaN;
  const perCaller = (unboundedAtEnd - unboundedAtCap) / (p.callers - p.maxCallers);
  const growthAfterCap = boundedAtEnd - boundedAtCap;
  const unboundedGrowthAfterCap = unboundedAtEnd - unboundedAtCap;
  // Bounded: past the cap the heap grows by less than a tenth of what an uncapped table adds.
  const bounded = growthAfterCap < 0.1 * unboundedGrowthAfterCap;
  ctx.log(
    `  callers: heap +${fmtBytes(boundedAtCap)} at the cap, +${fmtBytes(boundedAtEnd)} at ${fmtInt(p.callers)} (uncapped: +${fmtBytes(unboundedAtEnd)})`,
  );
  const rows: Row[] = [
    {
      id: '8',
      scenario: 'Callers',
      measure: `${fmtInt(p.callers)} distinct callers, rate limiter capped at ${fmtInt(p.maxCallers)}`,
      result: `heap +${fmtBytes(boundedAtCap)} at ${fmtInt(p.maxCallers)} callers, +${fmtBytes(boundedAtEnd)} at ${fmtInt(p.callers)}`,
      target: 'bounded by the cap',
      status: status(bounded),
      note:
        `uncapped for comparison: +${fmtBytes(unboundedAtEnd)} (${fmtBytes(perCaller)} per remembered caller); ` +
        `${result.rateLimited} calls refused. Measured with breaker: false; with default options the heap at ` +
        `${fmtInt(p.callers)} callers is +${fmtBytes(result.boundedWithBreakers[last] ?? Number.NaN)}: opossum keeps every call's latency ` +
        'for its 10 s window (bounded by time, not by callers)',
    },
  ];
  const checkpoints = Object.keys(result.bounded);
  const details = [
    `Each caller sends one request (\`caller\` option) through \`rateLimit: { ratePerSec: 10, burst: 10, maxCallers: ${p.maxCallers} }\`, ` +
      'in-process transport, 16 in flight, `breaker: false` (see the note above; the last column has breakers on). ' +
      'Heap growth after GC since before the first caller; the uncapped ' +
      `client (maxCallers ${fmtInt(p.callers * 2)}) shows what the table would cost without the bound. ` +
      `Client CPU per request: ${fmt(result.usPerRequest, 1)} us.`,
    '',
    table(
      ['callers seen', `heap growth, cap ${fmtInt(p.maxCallers)}`, 'heap growth, uncapped', `cap ${fmtInt(p.maxCallers)}, default options (breakers on)`],
      checkpoints.map((c) => [
        fmtInt(Number(c)),
        fmtBytes(result.bounded[c]!),
        fmtBytes(result.unbounded[c]!),
        fmtBytes(result.boundedWithBreakers[c]!),
      ]),
    ),
  ].join('\n');
  return { key: 'callers', title: 'Scenario 8: callers', rows, data: { params: p, result }, details };
}
