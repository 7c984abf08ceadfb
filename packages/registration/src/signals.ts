import { AbortedError } from '@peerlb/registry';

/** A signal and a bounded time source that a caller can cancel: one per registry call. */
export interface ScopedSignal {
  readonly signal: AbortSignal;
  dispose(): void;
}

/**
 * `parent` or a timeout, whichever fires first. Hand-rolled rather than `AbortSignal.any` so the
 * listener on a long-lived parent (the heartbeat loop's) is removed after every call.
 */
export function scopedSignal(parent: AbortSignal | undefined, timeoutMs: number, what = 'registry call'): ScopedSignal {
  const controller = new AbortController();
  const onAbort = () => controller.abort(parent?.reason);
  const timer = setTimeout(() => controller.abort(new Error(`${what} timed out after ${timeoutMs} ms`)), timeoutMs);
  timer.unref();
  if (parent?.aborted) controller.abort(parent.reason);
  else parent?.addEventListener('abort', onAbort, { once: true });
  return {
    signal: controller.signal,
    dispose() {
      clearTimeout(timer);
      parent?.removeEventListener('abort', onAbort);
    },
  };
}

export async function withScopedSignal<T>(
  parent: AbortSignal | undefined,
  timeoutMs: number,
  fn: (signal: AbortSignal) => Promise<T>,
): Promise<T> {
  const scoped = scopedSignal(parent, timeoutMs);
  // Raced against the signal too: a callee that ignores its signal must not stall us past the bound.
  let onAbort: (() => void) | undefined;
  const aborted = new Promise<never>((_, reject) => {
    onAbort = () => reject(new AbortedError(scoped.signal.reason));
    if (scoped.signal.aborted) onAbort();
    else scoped.signal.addEventListener('abort', onAbort, { once: true });
  });
  aborted.catch(() => {});
  try {
    return await Promise.race([fn(scoped.signal), aborted]);
  } finally {
    if (onAbort) scoped.signal.removeEventListener('abort', onAbort);
    scoped.dispose();
  }
}
