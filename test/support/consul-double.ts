import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { CHECK_OUTPUT_MAX, runHttpCheck, type ConsulCheckStatus, type HttpCheckSpec } from './consul-double-probe.js';
import {
  BadRequest,
  bool,
  decodeFailure,
  duration,
  field,
  int,
  parseJsonBody,
  record,
  str,
  stringList,
  stringMap,
  validateMeta,
} from './consul-double-decode.js';
import { formatGoDuration, parseGoDuration } from './go-duration.js';

/*
 * A Consul agent test double: one `consul agent -dev` node (datacenter dc1) speaking the slice of
 * the HTTP API peerlb uses. Real agents run in tests too (test/support/consul-agent.ts); the double
 * stays for what a real agent cannot do on demand: cut answers, slow bodies, an index going
 * backwards, 500 storms, sub-second check timings.
 * It follows Consul's documented behaviour and, where the docs are silent, Consul's source
 * (agent/agent_endpoint.go, agent/health_endpoint.go, agent/local/state.go, agent/checks):
 *
 * - PUT /v1/agent/service/register, PUT /v1/agent/service/deregister/:id
 * - PUT /v1/agent/check/pass|warn|fail/:id?note=, PUT /v1/agent/check/update/:id {Status, Output}
 * - GET /v1/catalog/services (not blocking; the `consul` service itself listed, as on a server)
 * - GET /v1/agent/services, GET /v1/agent/checks, GET /v1/status/leader, GET /v1/agent/self
 *   (Config.NodeName), GET /v1/acl/token/self (401 without ACLs, as a real agent answers),
 *   GET /v1/catalog/node/:node (null for an unknown node)
 * - GET /v1/health/service/:name?passing&tag=&index=&wait=  (blocking query)
 *
 * Deliberate differences from a real agent (test speed and size):
 * - `Interval` below 1 s is raised to `minCheckIntervalMs` (real agent: 1 s; tests may lower it).
 * - `DeregisterCriticalServiceAfter` below 1 minute is honoured as given (real agent: raised to
 *   1 m), and the reaper runs every `reapIntervalMs` (real agent: every 30 s).
 * - Only HTTP and TTL checks; any other check type is a 400. FailuresBeforeCritical,
 *   SuccessBeforePassing and redirect following are not modelled.
 * - The `filter` query parameter (bexpr) is answered with a 400 rather than silently ignored.
 * - Unknown ids are answered as current Consul does: deregistering one is a 404 (1.8.7: 200, or
 *   500 "Unknown service" with ACLs), a TTL update of an unknown check a 404 (1.8.7: 500 "... does
 *   not have associated TTL"). The adapter accepts both; test/consul-real-agent.test.ts runs 1.8.7.
 * - Everything else is checked against a real 1.8.7 agent by test/consul-double-parity.test.ts.
 * - An output-only check change (same status) does not bump the index, as the agent defers that
 *   sync, but the new output is visible at once.
 * ACL model: `token` is the one management token; any other token is "ACL not found" (403); no
 * token is the anonymous token under default-deny: writes get 403 "Permission denied...", reads
 * come back filtered (empty), as Consul does. /v1/status/leader needs no token.
 */

export interface ConsulDoubleOptions {
  /** When set, ACLs are on: this is the only valid token (header X-Consul-Token, Bearer, or ?token=). */
  token?: string;
  /** Node name; default 'double-node'. */
  nodeName?: string;
  /** Node.Address; default '127.0.0.1'. Service.Address stays as registered, possibly "". */
  nodeAddress?: string;
  /** Floor for HTTP check intervals. Consul raises anything below 1 s to 1 s: default 1000; tests may lower it. */
  minCheckIntervalMs?: number;
  /**
   * How often DeregisterCriticalServiceAfter is enforced: real agent 30 s, default 100 here.
   * Unlike a real agent (which raises it to 1 m), the double honours values below one minute.
   */
  reapIntervalMs?: number;
  /** Cap on a blocking query's wait; default 600000 (Consul's 10 m). */
  maxWaitMs?: number;
}

export interface ConsulDouble {
  /** 'http://127.0.0.1:<port>' */
  readonly url: string;
  readonly port: number;
  /** Requests received so far, optionally only those whose path starts with `pathPrefix`. */
  requestCount(pathPrefix?: string): number;
  /** Blocking queries currently held open (a watcher should hold at most one per service). */
  blockingQueries(): number;
  /** Sets the node's serfHealth check, which every health entry of this node carries. */
  setNodeCheck(status: 'passing' | 'warning' | 'critical'): void;
  /** Appends `entry` as-is to /v1/health/service/:name output (passing and tag filters do not apply); bumps the index. */
  injectRawEntry(service: string, entry: unknown): void;
  /** Closes the listener and every connection (held blocking queries end by socket close); state and index kept. */
  stop(): Promise<void>;
  /** Listens again on the same port. */
  start(): Promise<void>;
  /** stop(), forget every registration as a `consul agent -dev` restart does, start(); the index starts low again. */
  restart(): Promise<void>;
  /** Stops for good and clears every timer. */
  close(): Promise<void>;
}

type Status = ConsulCheckStatus;
type Identity = 'management' | 'anonymous' | 'unknown';

interface ServiceRecord {
  id: string;
  name: string;
  tags: string[];
  address: string;
  port: number;
  meta: Record<string, string>;
  /** A real agent (1.8.7) answers `Meta: null` for a service registered without meta. */
  metaGiven: boolean;
  weights: { Passing: number; Warning: number };
  enableTagOverride: boolean;
  createIndex: number;
  modifyIndex: number;
}

interface CheckRecord {
  id: string;
  name: string;
  serviceId: string;
  serviceName: string;
  serviceTags: string[];
  notes: string;
  status: Status;
  output: string;
  type: 'http' | 'ttl';
  intervalNs: number;
  timeoutNs: number;
  ttlNs: number;
  http?: HttpCheckSpec;
  reapAfterMs: number;
  /** Set by the first status *update* to critical, as agent/local/state.go does; drives the reaper. */
  criticalSince?: number;
  lastTtlOutput: string;
  definitionKey: string;
  createIndex: number;
  modifyIndex: number;
  timer?: NodeJS.Timeout;
  abort?: AbortController;
  generation: number;
}

interface Waiter {
  ready(): boolean;
  finish(): void;
}

const DATACENTER = 'dc1';
/** A fresh dev agent has already committed a few raft entries; a restart starts here again. */
const BOOT_INDEX = 10;
const DEFAULT_WAIT_MS = 5 * 60_000;
const HTTP_CHECK_DEFAULT_TIMEOUT_MS = 10_000;
const ANONYMOUS_ACCESSOR = '00000000-0000-0000-0000-000000000002';
const STATUSES: readonly string[] = ['passing', 'warning', 'critical'];
/** setTimeout fires at once (with a warning) beyond this; long TTLs and waits are clamped to it. */
const MAX_TIMER_MS = 2 ** 31 - 1;
const timerMs = (ms: number) => Math.min(Math.max(ms, 0), MAX_TIMER_MS);

function truncateOutput(output: string): string {
  const bytes = Buffer.byteLength(output);
  if (bytes <= CHECK_OUTPUT_MAX) return output;
  const head = Buffer.from(output).subarray(0, CHECK_OUTPUT_MAX).toString('utf8');
  return `${head} ... (captured ${CHECK_OUTPUT_MAX} of ${bytes} bytes)`;
}

function readBody(req: IncomingMessage, limit = 1 << 20): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        reject(new BadRequest('Request body too large'));
        req.destroy();
      } else chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
    req.on('close', () => reject(new Error('request closed before its body ended')));
  });
}

function positive(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!Number.isFinite(value) || value <= 0) throw new RangeError(`ConsulDoubleOptions.${name} must be a positive number`);
  return value;
}

class ConsulAgentDouble implements ConsulDouble {
  private server: Server | undefined;
  private closed = false;
  private listenPort = 0;
  private readonly token: string | undefined;
  private readonly nodeName: string;
  private readonly nodeAddress: string;
  private readonly minCheckIntervalMs: number;
  private readonly reapIntervalMs: number;
  private readonly maxWaitMs: number;

  private nodeId = randomUUID();
  private nodeStatus: Status = 'passing';
  private nodeCheckIndex = BOOT_INDEX;
  private index = BOOT_INDEX;
  /** Per lower-cased service name: the last index that changed its health output (Consul's "service.<name>" index). */
  private serviceIndex = new Map<string, number>();
  /** Index at which some service last lost its final instance; what Consul answers for absent services. */
  private extinctionIndex = 0;
  private readonly services = new Map<string, ServiceRecord>();
  private readonly checks = new Map<string, CheckRecord>();
  private readonly rawEntries = new Map<string, unknown[]>();
  private readonly waiters = new Set<Waiter>();
  private readonly requests = new Map<string, number>();
  private reaper: NodeJS.Timeout | undefined;

  constructor(options: ConsulDoubleOptions) {
    if (options.token !== undefined && (typeof options.token !== 'string' || options.token === '')) {
      throw new TypeError('ConsulDoubleOptions.token must be a non-empty string');
    }
    this.token = options.token;
    this.nodeName = options.nodeName ?? 'double-node';
    this.nodeAddress = options.nodeAddress ?? '127.0.0.1';
    if (this.nodeName === '' || this.nodeAddress === '') throw new TypeError('ConsulDoubleOptions.nodeName/nodeAddress must not be empty');
    this.minCheckIntervalMs = positive('minCheckIntervalMs', options.minCheckIntervalMs, 1000);
    this.reapIntervalMs = positive('reapIntervalMs', options.reapIntervalMs, 100);
    this.maxWaitMs = positive('maxWaitMs', options.maxWaitMs, 600_000);
  }

  get port(): number {
    return this.listenPort;
  }

  get url(): string {
    return `http://127.0.0.1:${this.listenPort}`;
  }

  requestCount(pathPrefix = ''): number {
    let total = 0;
    for (const [path, count] of this.requests) if (path.startsWith(pathPrefix)) total += count;
    return total;
  }

  blockingQueries(): number {
    return this.waiters.size;
  }

  setNodeCheck(status: 'passing' | 'warning' | 'critical'): void {
    if (!STATUSES.includes(status)) throw new TypeError(`unknown check status ${String(status)}`);
    if (status === this.nodeStatus) return;
    this.nodeStatus = status;
    // A node-level check changes every service on the node (updateAllServiceIndexesOfNode).
    this.nodeCheckIndex = this.bump(this.knownServiceNames());
  }

  injectRawEntry(service: string, entry: unknown): void {
    const key = service.toLowerCase();
    const list = this.rawEntries.get(key) ?? [];
    list.push(entry);
    this.rawEntries.set(key, list);
    this.bump([key]);
  }

  async start(): Promise<void> {
    if (this.closed) throw new Error('the Consul double is closed');
    if (this.server) return;
    const server = createServer({ requestTimeout: 0 }, (req, res) => {
      this.handle(req, res).catch(() => {
        if (!res.headersSent) this.sendText(res, 500, 'internal error in the Consul double');
        else res.destroy();
      });
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.listenPort, '127.0.0.1', () => {
        server.off('error', reject);
        resolve();
      });
    });
    const address = server.address();
    if (address === null || typeof address === 'string') throw new Error('unexpected listen address');
    this.listenPort = address.port;
    this.server = server;
    for (const check of this.checks.values()) this.armCheck(check);
    this.reaper = setInterval(() => this.reap(), this.reapIntervalMs);
    this.reaper.unref();
  }

  async stop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    clearInterval(this.reaper);
    this.reaper = undefined;
    for (const check of this.checks.values()) this.disarmCheck(check);
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    server.closeAllConnections();
    for (const waiter of [...this.waiters]) waiter.finish();
    await closed;
  }

  async restart(): Promise<void> {
    await this.stop();
    this.services.clear();
    this.checks.clear();
    this.rawEntries.clear();
    this.serviceIndex = new Map();
    this.extinctionIndex = 0;
    this.index = BOOT_INDEX;
    this.nodeCheckIndex = BOOT_INDEX;
    this.nodeStatus = 'passing';
    // Without a data dir a dev agent makes up a new node ID on every start.
    this.nodeId = randomUUID();
    await this.start();
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.stop();
  }

  // ---- state changes -------------------------------------------------------------------------

  private knownServiceNames(): Set<string> {
    const names = new Set<string>(this.rawEntries.keys());
    for (const s of this.services.values()) names.add(s.name.toLowerCase());
    return names;
  }

  private hasInstances(key: string): boolean {
    if (this.rawEntries.has(key)) return true;
    for (const s of this.services.values()) if (s.name.toLowerCase() === key) return true;
    return false;
  }

  /**
   * One raft write: a new global index, recorded against every service name it touched. A name
   * left without instances drops its own index and sets the extinction index instead, as the
   * catalog does, before any held query looks at it.
   */
  private bump(names: Iterable<string>): number {
    this.index += 1;
    for (const name of names) {
      const key = name.toLowerCase();
      if (this.hasInstances(key)) this.serviceIndex.set(key, this.index);
      else {
        this.serviceIndex.delete(key);
        this.extinctionIndex = this.index;
      }
    }
    for (const waiter of [...this.waiters]) if (waiter.ready()) waiter.finish();
    return this.index;
  }

  /** The X-Consul-Index of a health query, after Consul's maxIndexAndWatchChForService. */
  private queryIndex(key: string): number {
    if (this.hasInstances(key)) return this.serviceIndex.get(key) ?? this.index;
    return this.extinctionIndex > 0 ? this.extinctionIndex : this.index;
  }

  private updateCheck(check: CheckRecord, status: Status, output: string): void {
    if (status === 'critical') check.criticalSince ??= Date.now();
    else check.criticalSince = undefined;
    check.output = output;
    if (check.status === status) return;
    check.status = status;
    check.modifyIndex = this.bump([check.serviceName]);
  }

  private armCheck(check: CheckRecord): void {
    if (!this.server) return;
    this.disarmCheck(check);
    if (check.type === 'ttl') {
      check.timer = setTimeout(() => this.expireTtl(check), timerMs(check.ttlNs / 1e6));
    } else {
      const interval = Math.max(check.intervalNs / 1e6, this.minCheckIntervalMs);
      // Consul staggers the first run randomly within one interval (lib.RandomStagger).
      check.timer = setTimeout(() => void this.runCheck(check, interval), timerMs(Math.random() * interval));
    }
    check.timer.unref();
  }

  private disarmCheck(check: CheckRecord): void {
    check.generation += 1;
    clearTimeout(check.timer);
    check.timer = undefined;
    check.abort?.abort();
    check.abort = undefined;
  }

  private async runCheck(check: CheckRecord, intervalMs: number): Promise<void> {
    const generation = check.generation;
    const spec = check.http;
    if (!spec) return;
    check.abort = new AbortController();
    const result = await runHttpCheck(spec, check.abort.signal);
    if (check.generation !== generation || this.checks.get(check.id) !== check) return;
    check.abort = undefined;
    this.updateCheck(check, result.status, result.output);
    // The next run is one interval after this one finished, as in checks.CheckHTTP.run.
    check.timer = setTimeout(() => void this.runCheck(check, intervalMs), timerMs(intervalMs));
    check.timer.unref();
  }

  private expireTtl(check: CheckRecord): void {
    check.timer = undefined;
    if (this.checks.get(check.id) !== check) return;
    const output = check.lastTtlOutput === '' ? 'TTL expired' : `TTL expired (last output before timeout follows): ${check.lastTtlOutput}`;
    this.updateCheck(check, 'critical', output);
  }

  private reap(): void {
    const now = Date.now();
    const reaped = new Set<string>();
    for (const check of [...this.checks.values()]) {
      if (check.reapAfterMs <= 0 || check.criticalSince === undefined || reaped.has(check.serviceId)) continue;
      if (now - check.criticalSince > check.reapAfterMs) {
        reaped.add(check.serviceId);
        this.removeService(check.serviceId);
      }
    }
  }

  private removeService(id: string): void {
    const service = this.services.get(id);
    if (!service) return;
    this.services.delete(id);
    for (const check of [...this.checks.values()]) {
      if (check.serviceId !== id) continue;
      this.disarmCheck(check);
      this.checks.delete(check.id);
    }
    this.bump([service.name]);
  }

  // ---- HTTP ----------------------------------------------------------------------------------

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const path = url.pathname;
    this.requests.set(path, (this.requests.get(path) ?? 0) + 1);
    const method = req.method ?? 'GET';
    const route = this.route(path);
    if (!route) return this.sendText(res, 404, '404 page not found\n');
    if (method !== route.method) {
      res.setHeader('Allow', route.method);
      return this.sendText(res, 405, `method ${method} not allowed`);
    }
    if (route.name === 'leader') return this.sendJson(res, 200, '127.0.0.1:8300');
    const identity = this.identify(req, url);
    if (identity === 'unknown') return this.sendText(res, 403, 'ACL not found');
    try {
      switch (route.name) {
        case 'register':
          return this.register(res, url, identity, await readBody(req));
        case 'deregister':
          return this.deregister(res, route.arg, identity);
        case 'pass':
        case 'warn':
        case 'fail': {
          const status: Status = route.name === 'pass' ? 'passing' : route.name === 'warn' ? 'warning' : 'critical';
          return this.ttlUpdate(res, route.arg, identity, status, url.searchParams.get('note') ?? '');
        }
        case 'update':
          return this.checkUpdate(res, route.arg, identity, await readBody(req));
        case 'services':
          return this.sendJson(res, 200, identity === 'anonymous' ? {} : this.agentServices());
        case 'checks':
          return this.sendJson(res, 200, identity === 'anonymous' ? {} : this.agentChecks());
        case 'catalog-services':
          return this.sendJson(res, 200, identity === 'anonymous' ? {} : this.catalogServices(), {
            'X-Consul-Index': String(this.index),
          });
        case 'health':
          return await this.health(req, res, url, route.arg, identity);
        case 'self':
          // Reading it needs agent:read, which the anonymous token lacks under default deny.
          if (identity === 'anonymous') return this.sendText(res, 403, 'Permission denied');
          return this.sendJson(res, 200, {
            Config: { Datacenter: DATACENTER, NodeName: this.nodeName, NodeID: this.nodeId, Server: true, Version: '1.8.7' },
            Member: { Name: this.nodeName, Addr: this.nodeAddress, Status: 1 },
          });
        case 'catalog-node': {
          // The catalog's view of one node: this double is a one-node catalog. Unknown node: null.
          if (route.arg !== this.nodeName || identity === 'anonymous') return this.sendJson(res, 200, null);
          const services: Record<string, unknown> = {};
          for (const sv of this.services.values()) {
            services[sv.id] = { ID: sv.id, Service: sv.name, Tags: [...sv.tags], Address: sv.address, Meta: sv.metaGiven ? { ...sv.meta } : null, Port: sv.port };
          }
          return this.sendJson(res, 200, { Node: { ID: this.nodeId, Node: this.nodeName, Address: this.nodeAddress, Datacenter: DATACENTER }, Services: services });
        }
        case 'token-self':
          if (this.token === undefined) return this.sendText(res, 401, 'ACL support disabled');
          if (identity === 'anonymous') return this.sendText(res, 403, 'ACL not found');
          return this.sendJson(res, 200, {
            AccessorID: '00000000-0000-0000-0000-00000000cafe',
            SecretID: '<hidden>',
            Policies: [{ ID: '00000000-0000-0000-0000-000000000001', Name: 'global-management' }],
          });
      }
    } catch (err) {
      if (err instanceof BadRequest) return this.sendText(res, 400, err.message);
      throw err;
    }
  }

  private route(path: string): { name: string; method: string; arg: string } | undefined {
    const exact: Record<string, [string, string]> = {
      '/v1/agent/service/register': ['register', 'PUT'],
      '/v1/agent/services': ['services', 'GET'],
      '/v1/catalog/services': ['catalog-services', 'GET'],
      '/v1/agent/checks': ['checks', 'GET'],
      '/v1/status/leader': ['leader', 'GET'],
      '/v1/agent/self': ['self', 'GET'],
      '/v1/acl/token/self': ['token-self', 'GET'],
    };
    const hit = exact[path];
    if (hit) return { name: hit[0], method: hit[1], arg: '' };
    const prefixes: Array<[string, string, string]> = [
      ['/v1/agent/service/deregister/', 'deregister', 'PUT'],
      ['/v1/agent/check/pass/', 'pass', 'PUT'],
      ['/v1/agent/check/warn/', 'warn', 'PUT'],
      ['/v1/agent/check/fail/', 'fail', 'PUT'],
      ['/v1/agent/check/update/', 'update', 'PUT'],
      ['/v1/health/service/', 'health', 'GET'],
      ['/v1/catalog/node/', 'catalog-node', 'GET'],
    ];
    for (const [prefix, name, method] of prefixes) {
      if (!path.startsWith(prefix)) continue;
      let arg: string;
      try {
        arg = decodeURIComponent(path.slice(prefix.length));
      } catch {
        arg = path.slice(prefix.length);
      }
      return { name, method, arg };
    }
    return undefined;
  }

  /** Consul's parseToken order: ?token=, then X-Consul-Token, then Authorization: Bearer. */
  private identify(req: IncomingMessage, url: URL): Identity {
    if (this.token === undefined) return 'management';
    let presented = url.searchParams.get('token') ?? '';
    if (presented === '') presented = String(req.headers['x-consul-token'] ?? '').trim();
    if (presented === '') presented = /^Bearer\s+(\S+)/i.exec(req.headers.authorization ?? '')?.[1] ?? '';
    if (presented === '') return 'anonymous';
    return presented === this.token ? 'management' : 'unknown';
  }

  private denied(res: ServerResponse, serviceName: string): void {
    this.sendText(
      res,
      403,
      `Permission denied: token with AccessorID '${ANONYMOUS_ACCESSOR}' lacks permission 'service:write' on ${JSON.stringify(serviceName)}`,
    );
  }

  private sendText(res: ServerResponse, status: number, body: string): void {
    if (res.destroyed) return;
    res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': Buffer.byteLength(body) });
    res.end(body);
  }

  private sendJson(res: ServerResponse, status: number, value: unknown, headers: Record<string, string> = {}): void {
    if (res.destroyed) return;
    const body = JSON.stringify(value);
    res.writeHead(status, { ...headers, 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) });
    res.end(body);
  }

  private register(res: ServerResponse, url: URL, identity: Identity, text: string): void {
    const body = parseJsonBody(text, 'structs.ServiceDefinition');
    const ctx = 'ServiceDefinition';
    const name = str(body, 'Name', ctx);
    const id = str(body, 'ID', ctx) || name;
    const address = str(body, 'Address', ctx);
    const port = int(body, 'Port', ctx);
    const tags = stringList(field(body, 'Tags'), `${ctx}.Tags`);
    const meta = stringMap(field(body, 'Meta'), `${ctx}.Meta`);
    const enableTagOverride = bool(body, 'EnableTagOverride', ctx);
    const weightsRaw = field(body, 'Weights');
    let weights = { Passing: 1, Warning: 1 };
    if (weightsRaw !== undefined) {
      const w = record(weightsRaw, `${ctx}.Weights`, 'structs.Weights');
      weights = { Passing: int(w, 'Passing', 'Weights'), Warning: int(w, 'Warning', 'Weights') };
    }
    const definitions: Array<Record<string, unknown>> = [];
    const single = field(body, 'Check');
    if (single !== undefined) {
      const c = record(single, `${ctx}.Check`, 'structs.CheckType');
      // CheckType.Empty(): a zero-valued Check is no check at all.
      if (Object.values(c).some((v) => v !== null && v !== undefined && v !== '' && v !== 0 && v !== false)) definitions.push(c);
    }
    const many = field(body, 'Checks');
    if (many !== undefined) {
      if (!Array.isArray(many)) throw decodeFailure(many, `${ctx}.Checks`, 'structs.CheckTypes');
      for (const c of many) definitions.push(record(c, `${ctx}.Checks`, 'structs.CheckType'));
    }

    if (name === '') throw new BadRequest('Missing service name');
    if (address === '0.0.0.0' || address === '::' || address === '[::]') throw new BadRequest('Invalid service address');
    if (weights.Passing < 1) throw new BadRequest('Invalid Weights: Passing must be greater than 0');
    if (weights.Warning < 0) throw new BadRequest('Invalid Weights: Warning must be greater or equal than 0');
    validateMeta(meta);
    const parsed = definitions.map((c) => this.parseCheck(c));
    if (identity === 'anonymous') return this.denied(res, name);

    const existing = this.services.get(id);
    const metaGiven = field(body, 'Meta') !== undefined && field(body, 'Meta') !== null;
    const service: ServiceRecord = { id, name, tags, address, port, meta, metaGiven, weights, enableTagOverride, createIndex: 0, modifyIndex: 0 };
    const serviceKey = (s: ServiceRecord) => JSON.stringify([s.name, s.tags, s.address, s.port, s.meta, s.weights, s.enableTagOverride]);
    let changed = !existing || serviceKey(existing) !== serviceKey(service);

    const kept = new Set<string>();
    const newChecks: CheckRecord[] = [];
    parsed.forEach((def, i) => {
      let checkId = def.checkId;
      // Consul counts Check and Checks together: the ":n" suffix appears only when there are several.
      if (checkId === '') checkId = parsed.length > 1 ? `service:${id}:${i + 1}` : `service:${id}`;
      kept.add(checkId);
      const check: CheckRecord = {
        ...def.record,
        id: checkId,
        name: def.record.name || `Service '${name}' check`,
        serviceId: id,
        serviceName: name,
        serviceTags: tags,
        definitionKey: '',
        generation: 0,
      };
      check.definitionKey = JSON.stringify([check.name, check.notes, check.type, check.http, check.intervalNs, check.ttlNs, check.reapAfterMs, name, tags]);
      const previous = this.checks.get(checkId);
      if (previous) {
        // addServiceInternal restores Status and Output from its snapshot of the old check, and
        // the deferred UpdateCheck restarts the critical clock (a re-register resets the reaper).
        check.status = previous.status;
        check.output = previous.output;
        check.criticalSince = previous.status === 'critical' ? Date.now() : undefined;
        check.createIndex = previous.createIndex;
        check.modifyIndex = previous.modifyIndex;
        if (previous.definitionKey !== check.definitionKey) changed = true;
        this.disarmCheck(previous);
      } else changed = true;
      newChecks.push(check);
    });
    const stale: CheckRecord[] = [];
    const replace = url.searchParams.has('replace-existing-checks') && ['', 'true'].includes(url.searchParams.get('replace-existing-checks') ?? '');
    if (replace) {
      for (const check of this.checks.values()) if (check.serviceId === id && !kept.has(check.id)) stale.push(check);
    }

    const touched = new Set([name.toLowerCase()]);
    if (existing) touched.add(existing.name.toLowerCase());
    if (existing) {
      // A renamed service carries its old checks over to the new name.
      for (const check of this.checks.values()) {
        if (check.serviceId === id && !kept.has(check.id)) {
          check.serviceName = name;
          check.serviceTags = tags;
        }
      }
    }
    for (const check of stale) {
      this.disarmCheck(check);
      this.checks.delete(check.id);
      changed = true;
    }
    this.services.set(id, service);
    for (const check of newChecks) this.checks.set(check.id, check);
    // Service and checks reach the catalog in one write: one index for the whole registration.
    if (changed) {
      const at = this.bump(touched);
      service.createIndex = existing?.createIndex ?? at;
      service.modifyIndex = at;
      for (const check of newChecks) {
        if (check.createIndex === 0) check.createIndex = at;
        check.modifyIndex = at;
      }
    } else if (existing) {
      service.createIndex = existing.createIndex;
      service.modifyIndex = existing.modifyIndex;
    }
    for (const check of newChecks) this.armCheck(check);
    res.writeHead(200, { 'Content-Length': 0 });
    res.end();
  }

  private parseCheck(c: Record<string, unknown>): { checkId: string; record: Omit<CheckRecord, 'id' | 'serviceId' | 'serviceName' | 'serviceTags' | 'definitionKey' | 'generation'> } {
    const ctx = 'CheckType';
    const httpUrl = str(c, 'HTTP', ctx);
    const intervalNs = duration(c, 'Interval');
    const timeoutNs = duration(c, 'Timeout');
    const ttlNs = duration(c, 'TTL');
    const reapAfterNs = duration(c, 'DeregisterCriticalServiceAfter');
    const status = str(c, 'Status', ctx);
    const method = str(c, 'Method', ctx) || 'GET';
    const headerRaw = field(c, 'Header');
    const header: Record<string, string[]> = {};
    if (headerRaw !== undefined) {
      for (const [k, v] of Object.entries(record(headerRaw, `${ctx}.Header`, 'map[string][]string'))) header[k] = stringList(v, `${ctx}.Header`);
    }
    // CheckType.Validate(), in Consul's order.
    if (intervalNs > 0 && ttlNs > 0) throw new BadRequest('Invalid check: Interval and TTL cannot both be specified');
    const otherTypes = ['Script', 'Args', 'TCP', 'UDP', 'GRPC', 'H2PING', 'DockerContainerID', 'OSService', 'AliasNode', 'AliasService'];
    if (httpUrl === '' && otherTypes.some((k) => field(c, k) !== undefined)) {
      throw new BadRequest('Invalid check: the Consul double supports HTTP and TTL checks only');
    }
    if (httpUrl !== '' && intervalNs <= 0) throw new BadRequest('Invalid check: Interval must be > 0 for Script, HTTP, H2PING, TCP, UDP or GRPC checks');
    if (httpUrl === '' && ttlNs <= 0) throw new BadRequest('Invalid check: TTL must be > 0 for TTL checks');
    if (status !== '' && !STATUSES.includes(status)) throw new BadRequest("Status for checks must 'passing', 'warning', 'critical'");
    const isHttp = httpUrl !== '';
    return {
      checkId: str(c, 'CheckID', ctx),
      record: {
        name: str(c, 'Name', ctx),
        notes: str(c, 'Notes', ctx),
        status: (status || 'critical') as Status,
        output: '',
        type: isHttp ? 'http' : 'ttl',
        intervalNs: isHttp ? intervalNs : 0,
        timeoutNs: isHttp ? timeoutNs : 0,
        ttlNs: isHttp ? 0 : ttlNs,
        http: isHttp
          ? {
              url: httpUrl,
              method,
              header,
              body: str(c, 'Body', ctx),
              timeoutMs: timeoutNs > 0 ? timeoutNs / 1e6 : HTTP_CHECK_DEFAULT_TIMEOUT_MS,
              tlsSkipVerify: bool(c, 'TLSSkipVerify', ctx),
            }
          : undefined,
        reapAfterMs: reapAfterNs > 0 ? reapAfterNs / 1e6 : 0,
        lastTtlOutput: '',
        createIndex: 0,
        modifyIndex: 0,
      },
    };
  }

  private deregister(res: ServerResponse, id: string, identity: Identity): void {
    const service = this.services.get(id);
    if (!service) return this.sendText(res, 404, `Unknown service ID ${JSON.stringify(id)}. Ensure that the service ID is passed, not the service name.`);
    if (identity === 'anonymous') return this.denied(res, service.name);
    this.removeService(id);
    res.writeHead(200, { 'Content-Length': 0 });
    res.end();
  }

  private ttlUpdate(res: ServerResponse, id: string, identity: Identity, status: Status, output: string): void {
    const check = this.checks.get(id);
    if (!check) return this.sendText(res, 404, `Unknown check ID ${JSON.stringify(id)}. Ensure that the check ID is passed, not the check name.`);
    if (identity === 'anonymous') return this.denied(res, check.serviceName);
    if (check.type !== 'ttl') return this.sendText(res, 500, `CheckID ${JSON.stringify(id)} does not have associated TTL`);
    const truncated = truncateOutput(output);
    check.lastTtlOutput = truncated;
    this.updateCheck(check, status, truncated);
    this.armCheck(check);
    res.writeHead(200, { 'Content-Length': 0 });
    res.end();
  }

  private checkUpdate(res: ServerResponse, id: string, identity: Identity, text: string): void {
    const body = parseJsonBody(text, 'agent.checkUpdate');
    const status = str(body, 'Status', 'checkUpdate');
    const output = str(body, 'Output', 'checkUpdate');
    if (!STATUSES.includes(status)) throw new BadRequest(`Invalid check status: '${status}'`);
    this.ttlUpdate(res, id, identity, status as Status, output);
  }

  // ---- reads ---------------------------------------------------------------------------------

  private checkJson(check: CheckRecord): Record<string, unknown> {
    return {
      Node: this.nodeName,
      CheckID: check.id,
      Name: check.name,
      Status: check.status,
      Notes: check.notes,
      Output: check.output,
      ServiceID: check.serviceId,
      ServiceName: check.serviceName,
      ServiceTags: [...check.serviceTags],
      Type: check.type,
      Interval: check.intervalNs > 0 ? formatGoDuration(check.intervalNs) : '',
      Timeout: check.timeoutNs > 0 ? formatGoDuration(check.timeoutNs) : '',
      ExposedPort: 0,
      Definition: {},
      CreateIndex: check.createIndex,
      ModifyIndex: check.modifyIndex,
    };
  }

  private nodeCheckJson(): Record<string, unknown> {
    return {
      Node: this.nodeName,
      CheckID: 'serfHealth',
      Name: 'Serf Health Status',
      Status: this.nodeStatus,
      Notes: '',
      Output: this.nodeStatus === 'passing' ? 'Agent alive and reachable' : 'Agent not live or unreachable',
      ServiceID: '',
      ServiceName: '',
      ServiceTags: [],
      Type: '',
      Interval: '',
      Timeout: '',
      ExposedPort: 0,
      Definition: {},
      CreateIndex: BOOT_INDEX,
      ModifyIndex: this.nodeCheckIndex,
    };
  }

  /** Service name -> the union of its instances' tags, healthy or not. */
  private catalogServices(): Record<string, string[]> {
    const out: Record<string, string[]> = { consul: [] };
    for (const s of this.services.values()) out[s.name] = [...new Set([...(out[s.name] ?? []), ...s.tags])];
    return out;
  }

  private agentServices(): Record<string, unknown> {
    const out: Record<string, unknown> = {};
    for (const s of this.services.values()) {
      out[s.id] = {
        ID: s.id,
        Service: s.name,
        Tags: [...s.tags],
        Meta: { ...s.meta },
        Port: s.port,
        Address: s.address,
        Weights: { ...s.weights },
        EnableTagOverride: s.enableTagOverride,
        Datacenter: DATACENTER,
      };
    }
    return out;
  }

  private agentChecks(): Record<string, unknown> {
    const out: Record<string, unknown> = {};
    for (const check of this.checks.values()) out[check.id] = this.checkJson(check);
    return out;
  }

  private async health(req: IncomingMessage, res: ServerResponse, url: URL, name: string, identity: Identity): Promise<void> {
    if (name === '') throw new BadRequest('Missing service name');
    const params = url.searchParams;
    let waitMs = 0;
    const wait = params.get('wait') ?? '';
    if (wait !== '') {
      try {
        waitMs = parseGoDuration(wait) / 1e6;
      } catch {
        throw new BadRequest('Invalid wait time');
      }
    }
    let minIndex = 0;
    const indexText = params.get('index') ?? '';
    if (indexText !== '') {
      if (!/^\d+$/.test(indexText)) throw new BadRequest('Invalid index');
      minIndex = Number(indexText);
    }
    let passing = false;
    if (params.has('passing')) {
      const raw = params.get('passing') ?? '';
      // strconv.ParseBool, with Consul's bare "?passing" meaning true.
      if (raw === '' || ['1', 't', 'T', 'TRUE', 'true', 'True'].includes(raw)) passing = true;
      else if (!['0', 'f', 'F', 'FALSE', 'false', 'False'].includes(raw)) throw new BadRequest('Invalid value for ?passing');
    }
    if (params.has('filter')) throw new BadRequest('The Consul double does not implement the filter parameter');
    const tags = params.has('tag') ? params.getAll('tag') : undefined;
    const key = name.toLowerCase();

    if (minIndex > 0 && this.queryIndex(key) <= minIndex) {
      let timeout = waitMs > 0 ? Math.min(waitMs, this.maxWaitMs) : Math.min(DEFAULT_WAIT_MS, this.maxWaitMs);
      // The server adds up to wait/16 of jitter (structs.JitterFraction).
      timeout += Math.random() * (timeout / 16);
      await this.hold(req, res, () => this.queryIndex(key) > minIndex, timeout);
      if (res.destroyed || req.socket.destroyed) return;
    }

    const entries: unknown[] = [];
    if (identity !== 'anonymous') {
      const services = [...this.services.values()].filter((s) => s.name.toLowerCase() === key).sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
      for (const s of services) {
        const serviceChecks = [...this.checks.values()].filter((c) => c.serviceId === s.id).sort((a, b) => (a.id < b.id ? -1 : 1));
        if (passing && (this.nodeStatus !== 'passing' || serviceChecks.some((c) => c.status !== 'passing'))) continue;
        if (tags && !tags.every((t) => s.tags.some((own) => own.toLowerCase() === t.toLowerCase()))) continue;
        entries.push({
          Node: {
            ID: this.nodeId,
            Node: this.nodeName,
            Address: this.nodeAddress,
            Datacenter: DATACENTER,
            TaggedAddresses: { lan: this.nodeAddress, lan_ipv4: this.nodeAddress, wan: this.nodeAddress, wan_ipv4: this.nodeAddress },
            Meta: { 'consul-network-segment': '' },
            CreateIndex: BOOT_INDEX,
            ModifyIndex: BOOT_INDEX,
          },
          Service: {
            ID: s.id,
            Service: s.name,
            Tags: [...s.tags],
            Address: s.address,
            Meta: s.metaGiven ? { ...s.meta } : null,
            Port: s.port,
            Weights: { ...s.weights },
            EnableTagOverride: s.enableTagOverride,
            CreateIndex: s.createIndex,
            ModifyIndex: s.modifyIndex,
          },
          Checks: [this.nodeCheckJson(), ...serviceChecks.map((c) => this.checkJson(c))],
        });
      }
      entries.push(...(this.rawEntries.get(key) ?? []));
    }
    this.sendJson(res, 200, entries, {
      'X-Consul-Index': String(Math.max(1, this.queryIndex(key))),
      'X-Consul-Knownleader': 'true',
      'X-Consul-Lastcontact': '0',
    });
  }

  /** Parks a blocking query until `ready()`, the timeout, or its socket closing, whichever is first. */
  private hold(req: IncomingMessage, res: ServerResponse, ready: () => boolean, timeoutMs: number): Promise<void> {
    return new Promise((resolve) => {
      // A client that already left would otherwise park a waiter until the timeout.
      if (req.socket.destroyed || res.destroyed) return resolve();
      let done = false;
      const finish = () => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        this.waiters.delete(waiter);
        res.off('close', finish);
        resolve();
      };
      const waiter: Waiter = { ready, finish };
      const timer = setTimeout(finish, timerMs(timeoutMs));
      timer.unref();
      this.waiters.add(waiter);
      res.on('close', finish);
    });
  }
}

/** Starts a Consul agent double on 127.0.0.1, on a free port. */
export async function startConsulDouble(options: ConsulDoubleOptions = {}): Promise<ConsulDouble> {
  const double = new ConsulAgentDouble(options);
  await double.start();
  return double;
}
