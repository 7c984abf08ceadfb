/**
 * The instance's own verdict on its health. Healthy unless it returns `false`, throws, rejects, or
 * takes longer than `healthTimeoutMs`, so both `() => db.isUp()` and `async () => { await db.ping() }`
 * work.
 */
export type HealthFunction = () => boolean | void | Promise<boolean | void>;

/** `threw`: set when the health function threw or rejected, holding what it threw. */
export type HealthVerdict =
  | { readonly ok: true }
  | { readonly ok: false; readonly reason: string; readonly threw?: { readonly error: unknown } };

const HEALTHY: HealthVerdict = Object.freeze({ ok: true });

/**
 * Runs the user's health function, bounded by `timeoutMs`. Healthy unless it returns `false`,
 * throws, rejects or does not answer in time; never throws itself.
 */
export async function evaluateHealth(fn: HealthFunction | undefined, timeoutMs: number): Promise<HealthVerdict> {
  if (fn === undefined) return HEALTHY;
  let timer: NodeJS.Timeout | undefined;
  try {
    const result = await Promise.race([
      Promise.resolve().then(fn),
      new Promise<'timeout'>((resolve) => {
        timer = setTimeout(() => resolve('timeout'), timeoutMs);
        timer.unref();
      }),
    ]);
    if (result === 'timeout') return { ok: false, reason: `health function did not answer within ${timeoutMs} ms` };
    if (result === false) return { ok: false, reason: 'health function returned false' };
    return HEALTHY;
  } catch (err) {
    return { ok: false, reason: `health function failed: ${(err as Error)?.message ?? String(err)}`, threw: { error: err } };
  } finally {
    if (timer) clearTimeout(timer);
  }
}
