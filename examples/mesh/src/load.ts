import { Agent } from 'node:http';
import { httpJson } from './http-json.js';
import { SKUS } from './services/data.js';

export interface LoadOptions {
  /** The gateway. */
  baseUrl: string;
  /** Requests started per second, spread evenly. */
  ratePerSec: number;
  /** Requests in flight at most. */
  concurrency: number;
  /** Hard bounds: whichever comes first ends the load. */
  maxRequests: number;
  maxDurationMs: number;
  /** End users the requests are spread over (`x-user`), so none nears its rate limit. */
  users: number;
  requestTimeoutMs: number;
}

export interface LoadStats {
  sent: number;
  ok: number;
  failed: number;
  byStatus: Record<string, number>;
  /** The first few failures, for the summary. */
  failures: string[];
  durationMs: number;
}

const MAX_FAILURES_KEPT = 20;

/**
 * Steady GET load through the gateway, bounded in count and time: requests start on a fixed
 * schedule (`ratePerSec`), at most `concurrency` at once. Anything but a 200 with a JSON body is a
 * failure: the demo's target is none.
 */
export class LoadGenerator {
  readonly stats: LoadStats = { sent: 0, ok: 0, failed: 0, byStatus: {}, failures: [], durationMs: 0 };
  private readonly agent: Agent;
  private next = 0;
  private stopRequested = false;
  private startedAt = 0;
  private running: Promise<void> | undefined;

  constructor(private readonly options: LoadOptions) {
    this.agent = new Agent({ keepAlive: true, maxSockets: options.concurrency });
  }

  start(): void {
    if (this.running) return;
    this.startedAt = performance.now();
    const workers = Array.from({ length: this.options.concurrency }, () => this.worker());
    this.running = Promise.all(workers).then(() => {
      this.stats.durationMs = Math.round(performance.now() - this.startedAt);
      this.agent.destroy();
    });
  }

  /** Starts no new request; resolves when those in flight have ended. */
  async stop(): Promise<LoadStats> {
    this.stopRequested = true;
    await this.running;
    return this.stats;
  }

  private async worker(): Promise<void> {
    const interval = 1000 / this.options.ratePerSec;
    for (;;) {
      const i = this.next++;
      const due = this.startedAt + i * interval;
      if (this.stopRequested || i >= this.options.maxRequests || due - this.startedAt >= this.options.maxDurationMs) return;
      const wait = due - performance.now();
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
      if (this.stopRequested) return;
      await this.one(i);
    }
  }

  private async one(i: number): Promise<void> {
    const path = pathFor(i);
    const user = `load-${i % this.options.users}`;
    this.stats.sent++;
    try {
      const res = await httpJson(`${this.options.baseUrl}${path}`, {
        headers: { 'x-user': user },
        timeoutMs: this.options.requestTimeoutMs,
        agent: this.agent,
      });
      this.count(String(res.status));
      if (res.status === 200 && res.json !== undefined) {
        this.stats.ok++;
        return;
      }
      this.fail(`GET ${path} -> ${res.status} ${res.text.slice(0, 300)}`);
    } catch (err) {
      const e = err as { code?: unknown; message?: unknown };
      this.count(typeof e.code === 'string' ? e.code : 'error');
      this.fail(`GET ${path} -> ${String(e.message ?? err)}`);
    }
  }

  private count(key: string): void {
    this.stats.byStatus[key] = (this.stats.byStatus[key] ?? 0) + 1;
  }

  private fail(detail: string): void {
    this.stats.failed++;
    if (this.stats.failures.length < MAX_FAILURES_KEPT) this.stats.failures.push(detail);
  }
}

/** A fixed mix: 30% product list, 40% one product, 30% quotes (through orders). */
function pathFor(i: number): string {
  const sku = SKUS[i % SKUS.length] ?? 'tea-001';
  switch (i % 10) {
    case 0:
    case 1:
    case 2:
      return '/api/products';
    case 3:
    case 4:
    case 5:
    case 6:
      return `/api/products/${sku}`;
    default:
      return `/api/quote?sku=${sku}&qty=${1 + (i % 3)}`;
  }
}
