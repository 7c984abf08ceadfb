import { randomBytes, timingSafeEqual } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { Agent, createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from '@peerlb/registry';
import { killInstance, setHealthy, slowDown, startOneMore, stopInstance } from '../actions.js';
import type { Mesh } from '../mesh.js';
import { takeSnapshot } from '../observe.js';
import { ActionProblem, MAX_ACTION_BODY_BYTES, parseActionRequest, type ActionRequest } from './action-request.js';
import { WebModel, type WebModelOptions } from './web-model.js';

export interface WebViewOptions extends WebModelOptions {
  mesh: Mesh;
  registry: Registry;
  /** First port to try, then the next ones; 0: an ephemeral port. Always on 127.0.0.1. */
  port: number;
  /** How often browsers get a new frame while any is connected. */
  tickMs?: number;
}

const HOST = '127.0.0.1';
const PORT_TRIES = 100;
const STATIC_DIR = new URL('../../web/', import.meta.url);
const STATIC: Record<string, { file: string; type: string }> = {
  '/': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/app.js': { file: 'app.js', type: 'text/javascript; charset=utf-8' },
  '/app.css': { file: 'app.css', type: 'text/css; charset=utf-8' },
};
// The page loads only its own script, style and event stream, and may not be framed (its buttons
// kill processes: no clickjacking).
const PAGE_HEADERS = {
  'content-security-policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
  'x-frame-options': 'DENY',
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'cache-control': 'no-store',
};
const TOKEN_HEADER = 'x-peerlb-token';

/**
 * The mesh in the browser: a page, a Server-Sent Events stream of frames (one per tick while a
 * browser is connected), and `POST /api/action` for the failure buttons. Listens on 127.0.0.1 only.
 *
 * Other pages the same browser has open must not press the buttons: every action needs the run's
 * token (in the page, which other origins cannot read), a JSON content type (a cross-site form or
 * simple request cannot send one without a preflight, which is never granted), a matching Origin
 * when one is sent, and a Host of 127.0.0.1 or localhost (no DNS rebinding).
 */
export class WebView {
  readonly model: WebModel;
  private readonly token = randomBytes(24).toString('base64url');
  private readonly server: Server;
  private readonly streams = new Set<ServerResponse>();
  private readonly agent = new Agent({ keepAlive: true, maxSockets: 4 });
  private timer: NodeJS.Timeout | undefined;
  private ticking = false;
  private closed = false;
  private port = 0;

  private constructor(private readonly options: WebViewOptions) {
    this.model = new WebModel(options);
    this.server = createServer((req, res) => void this.handle(req, res));
    // A browser that goes away mid-request must not become an error here.
    this.server.on('clientError', (_err, socket) => socket.destroy());
  }

  static async start(options: WebViewOptions): Promise<WebView> {
    const view = new WebView(options);
    await view.listen(options.port);
    return view;
  }

  get url(): string {
    return `http://${HOST}:${this.port}`;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    for (const res of this.streams) res.end();
    this.streams.clear();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.agent.destroy();
  }

  private async listen(first: number): Promise<void> {
    const last = first === 0 ? 0 : Math.min(65_535, first + PORT_TRIES - 1);
    for (let port = first; ; port++) {
      try {
        await new Promise<void>((resolve, reject) => {
          this.server.once('error', reject);
          this.server.listen(port, HOST, () => {
            this.server.off('error', reject);
            resolve();
          });
        });
        this.port = (this.server.address() as AddressInfo).port;
        return;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE' || port >= last) throw err;
      }
    }
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    try {
      if (!this.hostAllowed(req.headers.host)) throw new ActionProblem(421, 'BAD_HOST', 'use http://127.0.0.1 or http://localhost');
      const path = new URL(req.url ?? '/', this.url).pathname;
      if (path === '/api/action') {
        if (req.method !== 'POST') throw new ActionProblem(405, 'METHOD_NOT_ALLOWED', 'POST a JSON body here');
        await this.action(req, res);
        return;
      }
      if (req.method !== 'GET' && req.method !== 'HEAD') throw new ActionProblem(405, 'METHOD_NOT_ALLOWED', 'only GET here');
      if (path === '/events') {
        this.subscribe(req, res);
        return;
      }
      const asset = STATIC[path];
      if (asset === undefined) throw new ActionProblem(404, 'NOT_FOUND', `nothing at ${path}`);
      let body = await readFile(new URL(asset.file, STATIC_DIR), 'utf8');
      if (asset.file === 'index.html') body = body.replace('{{TOKEN}}', this.token);
      res.writeHead(200, { ...PAGE_HEADERS, 'content-type': asset.type, 'content-length': Buffer.byteLength(body) });
      res.end(req.method === 'HEAD' ? undefined : body);
    } catch (err) {
      const problem =
        err instanceof ActionProblem ? err : new ActionProblem(500, 'INTERNAL', (err as Error).message ?? 'internal error');
      sendJson(res, problem.status, problem.toJSON());
    }
  }

  private hostAllowed(host: string | undefined): boolean {
    return host === `${HOST}:${this.port}` || host === `localhost:${this.port}`;
  }

  private async action(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const origin = req.headers.origin;
    if (origin !== undefined && origin !== `http://${req.headers.host}`) {
      throw new ActionProblem(403, 'BAD_ORIGIN', 'actions are accepted from this page only');
    }
    if (!this.tokenMatches(req.headers[TOKEN_HEADER])) {
      throw new ActionProblem(403, 'BAD_TOKEN', `the ${TOKEN_HEADER} header must carry this run's token (see the page)`);
    }
    const type = req.headers['content-type'] ?? '';
    if (!/^application\/json\s*(;|$)/i.test(type)) {
      throw new ActionProblem(415, 'UNSUPPORTED_MEDIA_TYPE', 'content-type must be application/json');
    }
    const request = parseActionRequest(await readBody(req));
    const result = await this.perform(request);
    this.model.note(`button: ${result}`);
    sendJson(res, 200, { ok: true, done: result });
    // Show the effect now rather than at the next tick.
    this.kick();
  }

  private async perform(request: ActionRequest): Promise<string> {
    const { mesh } = this.options;
    if (request.action === 'start') {
      if (mesh.stopped) throw new ActionProblem(409, 'STOPPING', 'the mesh is stopping');
      const proc = await startOneMore(mesh, request.service).catch((err: unknown) => {
        throw new ActionProblem(500, 'START_FAILED', (err as Error).message);
      });
      return `started ${proc.label} (${proc.info?.id ?? '?'})`;
    }
    const proc = mesh.procs.find((p) => p.info?.id === request.instance);
    if (proc === undefined) throw new ActionProblem(404, 'UNKNOWN_INSTANCE', `no instance ${request.instance} in this mesh`, 'instance');
    if (!proc.alive) throw new ActionProblem(409, 'NOT_RUNNING', `${proc.label} is not running`, 'instance');
    const who = `${proc.label} (${request.instance})`;
    const admin = async (run: () => Promise<void>): Promise<void> =>
      run().catch((err: unknown) => {
        throw new ActionProblem(502, 'INSTANCE_FAILED', (err as Error).message);
      });
    switch (request.action) {
      case 'kill':
        killInstance(proc);
        return `SIGKILL ${who}`;
      case 'stop':
        stopInstance(proc);
        return `SIGTERM ${who}: deregisters, drains, exits`;
      case 'slow':
        await admin(() => slowDown(proc, request.ms, this.agent));
        return request.ms > 0 ? `slowed ${who} by ${request.ms} ms per request` : `${who} back to full speed`;
      case 'unhealthy':
        await admin(() => setHealthy(proc, false, this.agent));
        return `${who} made unhealthy`;
      case 'healthy':
        await admin(() => setHealthy(proc, true, this.agent));
        return `${who} healthy again`;
    }
  }

  private tokenMatches(value: string | string[] | undefined): boolean {
    if (typeof value !== 'string') return false;
    const given = Buffer.from(value);
    const expected = Buffer.from(this.token);
    return given.length === expected.length && timingSafeEqual(given, expected);
  }

  private subscribe(req: IncomingMessage, res: ServerResponse): void {
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      'x-content-type-options': 'nosniff',
    });
    // Ask the browser to come back soon if the stream drops (the supervisor is busy, not gone).
    res.write('retry: 1000\n\n');
    this.streams.add(res);
    req.on('close', () => this.streams.delete(res));
    res.on('error', () => this.streams.delete(res));
    const latest = this.model.latest;
    if (latest) res.write(`data: ${JSON.stringify(latest)}\n\n`);
    this.kick();
  }

  /** Takes a snapshot now (unless one is under way) and keeps ticking while anyone watches. */
  private kick(): void {
    if (this.closed || this.ticking) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.ticking = true;
    void this.tick().finally(() => {
      this.ticking = false;
      if (!this.closed && this.streams.size > 0) {
        this.timer = setTimeout(() => this.kick(), this.options.tickMs ?? 1_000);
        this.timer.unref();
      }
    });
  }

  private async tick(): Promise<void> {
    try {
      const snap = await takeSnapshot(this.options.mesh.procs, this.options.registry, { timeoutMs: 900, agent: this.agent });
      const data = `data: ${JSON.stringify(this.model.update(snap))}\n\n`;
      for (const res of this.streams) res.write(data);
    } catch (err) {
      // One missed picture must not end the view.
      this.model.note(`web view: ${(err as Error).message}`);
    }
  }
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  if (res.headersSent || res.destroyed) return;
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
    'x-content-type-options': 'nosniff',
  });
  res.end(text);
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_ACTION_BODY_BYTES) throw new ActionProblem(413, 'TOO_LARGE', `the body is over ${MAX_ACTION_BODY_BYTES} bytes`);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}
