import type { IncomingMessage, ServerResponse } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Client } from '@peerlb/client';
import { CALLER_HEADER, currentDeadline, type DeadlineStats } from '@peerlb/registration';
import type { InstanceStats, ServiceName } from './protocol.js';
import { HttpError, errorReply, intParam, type Reply, type Route, type RouteContext } from './services/http.js';

const MAX_BODY_BYTES = 64 * 1024;
const MAX_CALLERS_KEPT = 32;
const MAX_SLOW_MS = 10_000;

/** What the admin endpoints need to know about the instance that the request handler does not. */
export interface InstanceIdentity {
  readonly service: ServiceName;
  readonly label: string;
  id(): string;
  url(): string;
  state(): string;
  registeredAt(): number | null;
  /** The serving side's deadline counters (`handle.stats().deadline`). */
  deadlineStats(): DeadlineStats | null;
  /** The event-loop utilization this instance reports on its answers (null before it serves). */
  eventLoopUtilization(): number | null;
}

/**
 * The request handler of one instance: the service's routes behind counters, the `x-served-by`
 * header, an adjustable delay, and the admin endpoints the supervisor polls.
 */
export class InstanceServer {
  private served = 0;
  private failed = 0;
  private inFlight = 0;
  private slowMs = 0;
  private slowShare = 1;
  private stoppedByDeadline = 0;
  private healthy = true;
  private firstRequestAt: number | null = null;
  private readonly callers = new Map<string, number>();
  private readonly startedAt = Date.now();

  constructor(
    private readonly identity: InstanceIdentity,
    private readonly routes: readonly Route[],
    private readonly client: Client,
    /** Answers `GET /metrics` (Prometheus text format). */
    private readonly metrics: (req: IncomingMessage, res: ServerResponse) => void,
  ) {}

  /** The health function given to `startService`: false after `POST /admin/health?ok=false`. */
  readonly health = (): boolean => this.healthy;

  readonly handle = (req: IncomingMessage, res: ServerResponse): void => {
    const url = new URL(req.url ?? '/', 'http://instance.invalid');
    if (url.pathname === '/metrics' && req.method === 'GET') {
      this.metrics(req, res);
      return;
    }
    if (url.pathname.startsWith('/admin/')) {
      this.respond(res, this.admin(req, url));
      return;
    }
    void this.serve(req, res, url);
  };

  stats(): InstanceStats {
    return {
      id: this.identity.id(),
      label: this.identity.label,
      service: this.identity.service,
      pid: process.pid,
      url: this.identity.url(),
      state: this.identity.state(),
      healthy: this.healthy,
      startedAt: this.startedAt,
      registeredAt: this.identity.registeredAt(),
      firstRequestAt: this.firstRequestAt,
      served: this.served,
      failed: this.failed,
      inFlight: this.inFlight,
      slowMs: this.slowMs,
      slowShare: this.slowShare,
      stoppedByDeadline: this.stoppedByDeadline,
      deadline: this.identity.deadlineStats(),
      eventLoopUtilization: this.identity.eventLoopUtilization(),
      callers: Object.fromEntries(this.callers),
      client: this.client.stats(),
    };
  }

  private async serve(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    this.firstRequestAt ??= Date.now();
    this.inFlight++;
    const callerHeader = req.headers[CALLER_HEADER];
    const caller = typeof callerHeader === 'string' && callerHeader !== '' ? callerHeader : undefined;
    this.countCaller(caller ?? '(none)');
    let reply: Reply;
    try {
      if (this.slowMs > 0 && (this.slowShare >= 1 || Math.random() < this.slowShare)) {
        // The slow work stops when the request's deadline passes or its caller leaves.
        const deadline = currentDeadline();
        if (!(await delay(this.slowMs, deadline?.signal))) {
          // Not a failure of this instance: nobody waits for the answer any more.
          this.stoppedByDeadline++;
          this.served++;
          this.inFlight--;
          this.respond(res, { status: 504, body: { error: 'deadline', message: 'deadline passed: work stopped' } });
          return;
        }
      }
      const method = req.method ?? 'GET';
      let found: { route: Route; params: string[] } | undefined;
      let pathKnown = false;
      for (const route of this.routes) {
        const match = route.path.exec(url.pathname);
        if (match === null) continue;
        pathKnown = true;
        if (route.method === method) {
          found = { route, params: match.slice(1) };
          break;
        }
      }
      if (found === undefined) {
        throw new HttpError(pathKnown ? 405 : 404, pathKnown ? `${method} not allowed here` : `no route for ${url.pathname}`);
      }
      const ctx: RouteContext = { req, url, params: found.params, caller, readBody: () => readBody(req) };
      reply = await found.route.handle(ctx);
    } catch (err) {
      reply = errorReply(err);
    }
    this.served++;
    if ((reply.status ?? 200) >= 500) this.failed++;
    this.inFlight--;
    this.respond(res, reply);
  }

  private admin(req: IncomingMessage, url: URL): Reply {
    try {
      if (url.pathname === '/admin/stats' && req.method === 'GET') return { body: { ...this.stats() } };
      if (url.pathname === '/admin/slow' && req.method === 'POST') {
        this.slowMs = intParam(url, 'ms', 200, 0, MAX_SLOW_MS);
        // share=N: only N percent of requests are slowed (a slow tail); default all.
        this.slowShare = intParam(url, 'share', 100, 1, 100) / 100;
        return { body: { slowMs: this.slowMs, slowShare: this.slowShare } };
      }
      if (url.pathname === '/admin/health' && req.method === 'POST') {
        const ok = url.searchParams.get('ok');
        if (ok !== 'true' && ok !== 'false') throw new HttpError(400, 'ok must be true or false');
        this.healthy = ok === 'true';
        return { body: { healthy: this.healthy } };
      }
      throw new HttpError(404, 'admin endpoints: GET /admin/stats, POST /admin/slow?ms=200&share=100, POST /admin/health?ok=false');
    } catch (err) {
      return errorReply(err);
    }
  }

  private respond(res: ServerResponse, reply: Reply): void {
    const body = JSON.stringify({ servedBy: this.identity.id(), ...reply.body });
    if (res.destroyed) return;
    res.writeHead(reply.status ?? 200, {
      ...reply.headers,
      'content-type': 'application/json',
      'content-length': Buffer.byteLength(body),
      'x-served-by': this.identity.id(),
    });
    res.end(body);
  }

  private countCaller(caller: string): void {
    const seen = this.callers.get(caller);
    if (seen !== undefined) this.callers.set(caller, seen + 1);
    else if (this.callers.size < MAX_CALLERS_KEPT) this.callers.set(caller, 1);
  }
}

/** Resolves true after `ms`, or false as soon as `signal` aborts. */
function delay(ms: number, signal?: AbortSignal): Promise<boolean> {
  return sleep(ms, true, signal ? { signal } : undefined).catch(() => false);
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) throw new HttpError(413, `body over ${MAX_BODY_BYTES} bytes`);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}
