import type { Client } from '@peerlb/client';

export interface InProcessLoad {
  readonly ok: number;
  readonly failures: Array<{ code: unknown; message: string }>;
  readonly sent: number;
  stop(): Promise<void>;
}

/**
 * A bounded GET loop in this process (for tests that need to look inside the client while it is
 * loaded): `concurrency` workers, a pause between requests, at most `maxRequests` and `maxMs`.
 */
export function startInProcessLoad(
  client: Client,
  service: string,
  options: { concurrency?: number; pauseMs?: number; maxRequests?: number; maxMs?: number; path?: string } = {},
): InProcessLoad {
  const { concurrency = 4, pauseMs = 5, maxRequests = 200_000, maxMs = 120_000, path = '/work' } = options;
  const failures: Array<{ code: unknown; message: string }> = [];
  let ok = 0;
  let sent = 0;
  let stopping = false;
  const started = Date.now();
  const worker = async () => {
    while (!stopping && sent < maxRequests && Date.now() - started < maxMs) {
      sent++;
      try {
        const res = await client.request({ service, path });
        await res.body.text();
        if (res.statusCode === 200) ok++;
        else failures.push({ code: res.statusCode, message: 'unexpected status' });
      } catch (err) {
        if (failures.length < 50) failures.push({ code: (err as { code?: unknown }).code, message: String((err as Error).message) });
        else failures.length++;
      }
      await new Promise((r) => setTimeout(r, pauseMs));
    }
  };
  const workers = Array.from({ length: concurrency }, worker);
  return {
    get ok() {
      return ok;
    },
    get failures() {
      return failures;
    },
    get sent() {
      return sent;
    },
    async stop() {
      stopping = true;
      await Promise.all(workers);
    },
  };
}
