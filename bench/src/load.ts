import { once } from 'node:events';
import { nextMessage, spawnEntry, stopChild } from './child.js';
import type { LoadResult, LoadSpec } from './load-runner.js';

/** Runs one load spec in a fresh process and returns its result. */
export async function runLoad(spec: LoadSpec, env?: NodeJS.ProcessEnv): Promise<LoadResult> {
  const child = spawnEntry('load-runner', spec, env ? { env } : {});
  try {
    const budget = spec.warmupMs + spec.durationMs + spec.timeoutMs + 30_000;
    const message = await nextMessage<{ type: 'result'; result: LoadResult }>(child, 'result', budget);
    if (child.exitCode === null && child.signalCode === null) await once(child, 'exit');
    return message.result;
  } finally {
    await stopChild(child);
  }
}

/**
 * Runs every spec `reps` times, interleaved (A B C, B C A, C A B, ...) so slow drift of a shared
 * machine spreads over all of them; returns the results per label, in repetition order.
 */
export async function runInterleaved(
  specs: readonly LoadSpec[],
  reps: number,
  env?: NodeJS.ProcessEnv,
  onResult?: (result: LoadResult, rep: number) => void,
): Promise<Map<string, LoadResult[]>> {
  const results = new Map<string, LoadResult[]>(specs.map((s) => [s.label, []]));
  for (let rep = 0; rep < reps; rep++) {
    for (let k = 0; k < specs.length; k++) {
      const spec = specs[(k + rep) % specs.length]!;
      const result = await runLoad(spec, env);
      results.get(spec.label)!.push(result);
      onResult?.(result, rep);
    }
  }
  return results;
}
