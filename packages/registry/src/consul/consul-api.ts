import { lookup as dnsLookup } from 'node:dns';
import { EventEmitter } from 'node:events';
import { Agent as HttpAgent, type ClientRequest, type IncomingMessage } from 'node:http';
import { Agent as HttpsAgent, type AgentOptions as HttpsAgentOptions } from 'node:https';
import { isIP, type LookupFunction } from 'node:net';
import type { Duplex } from 'node:stream';
import { checkServerIdentity, type PeerCertificate } from 'node:tls';
import Consul from 'consul';
import { AbortedError, InvalidOptionsError, RegistryAuthError, RegistryUnavailableError } from '../errors.js';
import type { ConsulServiceRegistration } from './consul-mapping.js';
import { isIpv6Host, type ConsulEndpoint, type ConsulTlsConfig } from './consul-options.js';

/**
 * The only module that touches the `consul` package (2.0.1, CommonJS). Its bundled types are
 * loose and partly wrong, and the runtime accepts more than they say (papi's `ctx` for
 * cancellation, `includeResponse` for headers), so the client is described below by the shapes
 * this module actually calls, and cast to them once.
 */

/**
 * papi (the HTTP layer under `consul`) aborts a request when its `ctx` EventEmitter emits
 * `cancel`, refuses to start one whose `ctx.canceled` is true, and resolves `[response, body]`
 * instead of the body when `ctx.includeResponse` is true.
 */
interface PapiContext extends EventEmitter {
  canceled?: boolean;
  includeResponse?: boolean;
}

interface RawCallOptions {
  ctx: PapiContext;
}

/** Keys are lower case: `consul` lower-cases (and strips `_` from) option keys before use. */
interface RawCheck {
  checkid: string;
  name: string;
  http?: string;
  interval?: string;
  timeout?: string;
  ttl?: string;
  deregistercriticalserviceafter?: string;
}

interface RawResponse {
  statusCode?: number;
  headers: Record<string, string | string[] | undefined>;
  body?: unknown;
}

interface RawConsulClient {
  /** papi's extension point: `onCreate` runs before each request is built (see ConsulApi). */
  _ext(event: 'onCreate', run: (request: { opts: RawRequestOptions }, next: () => void) => void): void;
  /** papi's raw GET, for the one endpoint the package lacks (`/v1/acl/token/self`). */
  _get(
    options: RawCallOptions & { name: string; path: string; headers: Record<string, string> },
    next: (request: { err?: unknown; res?: RawResponse }, done: (stop: false, err?: unknown, value?: unknown) => void) => void,
  ): Promise<unknown>;
  agent: {
    self(options: RawCallOptions): Promise<unknown>;
    service: {
      register(options: RawCallOptions & {
        id: string;
        name: string;
        tags: string[];
        address: string;
        port: number;
        meta: Record<string, string>;
        checks: RawCheck[];
      }): Promise<unknown>;
      deregister(options: RawCallOptions & { id: string }): Promise<unknown>;
      list(options: RawCallOptions): Promise<unknown>;
    };
    check: Record<'pass' | 'warn' | 'fail', (options: RawCallOptions & { id: string; note?: string }) => Promise<unknown>>;
  };
  catalog: {
    service: {
      list(options: RawCallOptions & { dc?: string }): Promise<unknown>;
    };
    node: {
      /** `GET /v1/catalog/node/:node`: `{ Node, Services: { [id]: ... } }`, or null for an unknown node. */
      services(options: RawCallOptions & { node: string; dc?: string }): Promise<unknown>;
    };
  };
  health: {
    /** With `ctx.includeResponse` this resolves `[response, body]`. */
    service(options: RawCallOptions & {
      service: string;
      passing?: boolean;
      dc?: string;
      index?: string;
      wait?: string;
    }): Promise<unknown>;
  };
}

interface RawRequestOptions {
  name?: string;
  query?: Record<string, string>;
}

/** The fields of a papi/consul error this module reads. */
interface RawError {
  message?: string;
  code?: string;
  isAbort?: boolean;
  isResponse?: boolean;
  isValidation?: boolean;
  response?: RawResponse;
}

/** How one call may be stopped: any of `signals` aborts it; after `timeoutMs` it fails as unavailable. */
export interface CallControl {
  signals: ReadonlyArray<AbortSignal | undefined>;
  timeoutMs: number;
}

export type TtlUpdate = 'pass' | 'warn' | 'fail';

/** A non-2xx answer other than 403. `status` and `detail` let callers tell "unknown check" apart. */
export class ConsulStatusError extends RegistryUnavailableError {
  readonly status: number;
  /** The answer's body (trimmed, token scrubbed): Consul explains errors in plain text. */
  readonly detail: string;

  constructor(what: string, status: number, detail: string) {
    super(`consul ${what}: HTTP ${status}${detail ? `: ${detail}` : ''}`);
    // Shown as the public class it is an instance of: this one is an internal detail.
    this.name = 'RegistryUnavailableError';
    this.status = status;
    this.detail = detail;
  }
}

export interface HealthServiceReply {
  /** The raw `X-Consul-Index` header; the caller decides what a usable index is. */
  index: string | undefined;
  body: unknown;
}

export interface ConsulApiConfig {
  endpoint: ConsulEndpoint;
  token: string | undefined;
  tls: ConsulTlsConfig;
  /** A response body larger than this fails its call (the answer is never buffered whole). */
  maxResponseBytes: number;
}

/** The code a too-large answer fails with on its way to #translate. */
const TOO_LARGE = 'PEERLB_CONSUL_ANSWER_TOO_LARGE';
const GLOBAL_MANAGEMENT_POLICY = '00000000-0000-0000-0000-000000000001';

export class ConsulApi {
  readonly #client: RawConsulClient;
  readonly #agent: HttpAgent;
  #idleCloses = 0;
  // Kept only to scrub it from any text an error might carry; in a #field so inspecting the
  // object cannot print it.
  readonly #token: string | undefined;
  readonly #maxResponseBytes: number;

  constructor(config: ConsulApiConfig) {
    const { endpoint } = config;
    this.#token = config.token;
    // papi hands the URL's bracketed IPv6 hostname ("[::1]") to http.request as is, so the DNS
    // lookup (and the TLS identity check, see tlsAgentOptions) would see the brackets; an agent's
    // options reach every socket it opens, so strip them there.
    const ipv6 = isIpv6Host(endpoint.host) ? { lookup: unbracketedLookup } : {};
    // Our own agent: keep-alive like the package's default, plus the TLS settings, and we destroy
    // it on close. It lives in a #field: its options hold the client key.
    this.#agent = endpoint.secure
      ? new HttpsAgent({ keepAlive: true, ...ipv6, ...tlsAgentOptions(endpoint, config.tls) })
      : new HttpAgent({ keepAlive: true, ...ipv6 });
    reportIdleCloses(this.#agent, () => this.#idleCloses++);
    failCutShortResponses(this.#agent, config.maxResponseBytes);
    this.#maxResponseBytes = config.maxResponseBytes;
    const options = {
      host: endpoint.host,
      port: endpoint.port,
      secure: endpoint.secure,
      agent: this.#agent,
      ...(config.token === undefined ? {} : { defaults: { token: config.token } }),
    };
    this.#client = new Consul(options) as unknown as RawConsulClient;
    // Re-registering must drop checks the new registration no longer has (Consul keeps them
    // otherwise); the package has no option for the query parameter, so add it as papi builds
    // the request.
    this.#client._ext('onCreate', (request, next) => {
      if (request.opts.name === 'agent.service.register') {
        request.opts.query = { ...request.opts.query, 'replace-existing-checks': 'true' };
      }
      next();
    });
  }

  registerService(reg: ConsulServiceRegistration, control: CallControl): Promise<void> {
    const checks: RawCheck[] = reg.checks.map((c) => ({
      checkid: c.checkId,
      name: c.name,
      ...(c.kind === 'http' ? { http: c.http, interval: c.interval, timeout: c.timeout } : { ttl: c.ttl }),
      ...(c.deregisterCriticalServiceAfter === undefined
        ? {}
        : { deregistercriticalserviceafter: c.deregisterCriticalServiceAfter }),
    }));
    const what = `PUT /v1/agent/service/register (${reg.id})`;
    return this.#call(what, control, { retryReset: true, refusedInput: 'instance' }, async (ctx) => {
      await this.#client.agent.service.register({
        ctx,
        id: reg.id,
        name: reg.name,
        tags: reg.tags,
        address: reg.address,
        port: reg.port,
        meta: reg.meta,
        checks,
      });
    });
  }

  deregisterService(id: string, control: CallControl): Promise<void> {
    return this.#call(`PUT /v1/agent/service/deregister/${id}`, control, { retryReset: true }, async (ctx) => {
      await this.#client.agent.service.deregister({ ctx, id });
    });
  }

  updateTtlCheck(checkId: string, update: TtlUpdate, note: string | undefined, control: CallControl): Promise<void> {
    return this.#call(`PUT /v1/agent/check/${update}/${checkId}`, control, { retryReset: true }, async (ctx) => {
      await this.#client.agent.check[update]({ ctx, id: checkId, ...(note ? { note } : {}) });
    });
  }

  /**
   * Whether the local agent knows service `id`. consul 2.0.1 has no call for
   * `GET /v1/agent/service/:id`, so this lists the agent's services (`GET /v1/agent/services`):
   * an agent holds few, and this runs only for instances without a TTL check.
   */
  agentHasService(id: string, control: CallControl): Promise<boolean> {
    return this.#call('GET /v1/agent/services', control, { retryReset: true }, async (ctx) => {
      const body = await this.#client.agent.service.list({ ctx });
      if (body === null || typeof body !== 'object' || Array.isArray(body)) {
        throw new RegistryUnavailableError('consul GET /v1/agent/services: expected a JSON object');
      }
      return Object.prototype.hasOwnProperty.call(body, id);
    });
  }

  /** `GET /v1/catalog/services`: service name -> tags, for every service in the catalog. */
  catalogServices(query: { datacenter?: string }, control: CallControl): Promise<Record<string, unknown>> {
    return this.#call('GET /v1/catalog/services', control, { retryReset: true }, async (ctx) => {
      const body = await this.#client.catalog.service.list({
        ctx,
        ...(query.datacenter === undefined ? {} : { dc: query.datacenter }),
      });
      if (body === null || typeof body !== 'object' || Array.isArray(body)) {
        throw new RegistryUnavailableError('consul GET /v1/catalog/services: expected a JSON object');
      }
      return body as Record<string, unknown>;
    });
  }

  /**
   * The name of the agent's node (`GET /v1/agent/self`), or undefined when the token may not read
   * it (that needs `agent:read`).
   */
  nodeName(control: CallControl): Promise<string | undefined> {
    return this.#call('GET /v1/agent/self', control, { retryReset: true }, async (ctx) => {
      const body = (await this.#client.agent.self({ ctx })) as { Config?: { NodeName?: unknown } } | null;
      const name = body?.Config?.NodeName;
      return typeof name === 'string' && name !== '' ? name : undefined;
    }).catch((err: unknown) => {
      if (err instanceof RegistryAuthError) return undefined;
      throw err;
    });
  }

  /**
   * The ids of the services the catalog holds for `node` (`GET /v1/catalog/node/:node`): one
   * node's services, however large the services are. An unknown node holds none.
   */
  nodeServiceIds(node: string, datacenter: string | undefined, control: CallControl): Promise<Set<string>> {
    return this.#call(`GET /v1/catalog/node/${node}`, control, { retryReset: true }, async (ctx) => {
      const body = await this.#client.catalog.node.services({ ctx, node, ...(datacenter === undefined ? {} : { dc: datacenter }) });
      const services = (body as { Services?: unknown } | null)?.Services;
      if (services === null || typeof services !== 'object' || Array.isArray(services)) return new Set<string>();
      return new Set(Object.keys(services));
    });
  }

  /**
   * What the token is (`GET /v1/acl/token/self`, which any valid token may read): whether ACLs are
   * off (401 "ACL support disabled") and whether it holds the global-management policy. The
   * anonymous token under ACLs gets 403 (neither).
   */
  tokenSelf(control: CallControl): Promise<{ aclsOff: boolean; management: boolean }> {
    const headers: Record<string, string> = this.#token === undefined ? {} : { 'x-consul-token': this.#token };
    return this.#call('GET /v1/acl/token/self', control, { retryReset: true }, async (ctx) => {
      const body = await this.#client._get({ ctx, name: 'acl.token.self', path: '/acl/token/self', headers }, (request, done) => {
        if (request.err) return done(false, request.err);
        done(false, undefined, request.res?.body);
      });
      const policies = (body as { Policies?: Array<{ ID?: unknown }> } | null)?.Policies;
      return { aclsOff: false, management: Array.isArray(policies) && policies.some((p) => p?.ID === GLOBAL_MANAGEMENT_POLICY) };
    }).catch((err: unknown) => {
      if (err instanceof ConsulStatusError && err.status === 401) return { aclsOff: true, management: false };
      if (err instanceof RegistryAuthError) return { aclsOff: false, management: false };
      throw err;
    });
  }

  /**
   * `GET /v1/health/service/:name`, only passing entries unless `all`; blocking when `index` is
   * given.
   */
  healthService(
    query: { service: string; datacenter?: string; index?: string; wait?: string; all?: boolean },
    control: CallControl,
  ): Promise<HealthServiceReply> {
    const options = { includeResponse: true, retryReset: query.index === undefined };
    return this.#call(`GET /v1/health/service/${query.service}`, control, options, async (ctx) => {
      const result = await this.#client.health.service({
        ctx,
        service: query.service,
        passing: query.all !== true,
        ...(query.datacenter === undefined ? {} : { dc: query.datacenter }),
        ...(query.index === undefined ? {} : { index: query.index }),
        ...(query.wait === undefined ? {} : { wait: query.wait }),
      });
      if (!Array.isArray(result) || result.length !== 2) {
        throw new RegistryUnavailableError(`consul GET /v1/health/service/${query.service}: unexpected client result`);
      }
      const res = result[0] as RawResponse;
      const header = res.headers['x-consul-index'];
      return { index: Array.isArray(header) ? header[0] : header, body: result[1] };
    });
  }

  /**
   * How many pooled keep-alive connections the agent's side has closed while idle: a sign the
   * agent may have restarted, so a watch should not trust its last index (see blocking-watch.ts).
   */
  get idleConnectionCloses(): number {
    return this.#idleCloses;
  }

  /** Drops every pooled and in-flight connection. */
  close(): void {
    this.#agent.destroy();
  }

  /**
   * Runs one request with cancellation and a time limit, and turns whatever the package throws
   * into our errors: 403 -> RegistryAuthError, other non-2xx -> ConsulStatusError, abort ->
   * AbortedError, everything else -> RegistryUnavailableError. papi errors are never attached as
   * `cause`: they hold the request, and the request holds the token header.
   *
   * With `retryReset`, a connection reset before any answer is retried once at once: it is what a
   * pooled keep-alive socket gives after the agent restarted (Node's documented keep-alive race),
   * and every call here is idempotent (register, deregister, TTL status, reads). Blocking queries
   * are not retried here: their watch loop must see the error, because the index it blocked on may
   * belong to an agent that is gone, and blocking on it again could hang for the whole wait.
   */
  async #call<T>(
    what: string,
    control: CallControl,
    options: { includeResponse?: boolean; retryReset: boolean; refusedInput?: string },
    run: (ctx: PapiContext) => Promise<T>,
  ): Promise<T> {
    const signals = control.signals.filter((s): s is AbortSignal => s !== undefined);
    const aborted = signals.find((s) => s.aborted);
    if (aborted) throw new AbortedError(aborted.reason);

    let ctx: PapiContext | undefined;
    let abortedBy: AbortSignal | undefined;
    let timedOut = false;
    const cancel = () => {
      if (!ctx || ctx.canceled) return;
      ctx.canceled = true;
      ctx.emit('cancel');
    };
    const onAbort = (event: Event) => {
      abortedBy ??= event.target as AbortSignal;
      cancel();
    };
    for (const s of signals) s.addEventListener('abort', onAbort, { once: true });
    // Our own timer rather than papi's `timeout`, whose timer is not unref'd.
    const timer = setTimeout(() => {
      timedOut = true;
      cancel();
    }, control.timeoutMs);
    timer.unref();
    try {
      for (let attempt = 0; ; attempt++) {
        ctx = new EventEmitter();
        if (options.includeResponse) ctx.includeResponse = true;
        try {
          return await run(ctx);
        } catch (err) {
          if (abortedBy) throw new AbortedError(abortedBy.reason);
          if (timedOut) throw new RegistryUnavailableError(`consul ${what}: no answer within ${control.timeoutMs} ms`);
          if (attempt === 0 && options.retryReset && isConnectionReset(err)) continue;
          throw this.#translate(what, err, options.refusedInput);
        }
      }
    } finally {
      clearTimeout(timer);
      for (const s of signals) s.removeEventListener('abort', onAbort);
    }
  }

  #translate(what: string, err: unknown, refusedInput?: string): Error {
    if (err instanceof RegistryUnavailableError || err instanceof RegistryAuthError) return err;
    const raw: RawError = err !== null && typeof err === 'object' ? (err as RawError) : { message: String(err) };
    const status = raw.isResponse ? raw.response?.statusCode : undefined;
    if (status !== undefined) {
      const detail = bodyText(raw.response?.body, (text) => this.#scrub(text));
      // The agent refused what we sent (meta, weights, names it does not allow): retrying cannot
      // help, so it is the caller's options error, with Consul's reason.
      if (status === 400 && refusedInput !== undefined) {
        return new InvalidOptionsError(refusedInput, `the Consul agent refused it (HTTP 400)${detail ? `: ${detail}` : ''}`);
      }
      if (status === 403) {
        return new RegistryAuthError(
          `consul ${what}: HTTP 403, the ACL token was refused or lacks permission${detail ? `: ${detail}` : ''}`,
        );
      }
      return new ConsulStatusError(what, status, detail);
    }
    if (raw.code === TOO_LARGE) {
      return new RegistryUnavailableError(
        `consul ${what}: the answer is larger than maxResponseBytes (${this.#maxResponseBytes} bytes), not read`,
      );
    }
    // A body that is not JSON: the parser's message quotes a piece of the body, which may hold
    // anything (the token too, cut where no scrubbing can find it), so it is never passed on.
    const message =
      raw.isResponse === undefined && /decode \([^)]*\) failed/.test(raw.message ?? '')
        ? 'the answer is not valid JSON'
        : this.#scrub(raw.message ?? 'request failed');
    // A fresh cause carrying only the message and code: nothing that could reach the token.
    const cause = Object.assign(new Error(message), raw.code === undefined ? {} : { code: raw.code });
    return new RegistryUnavailableError(`consul ${what}: ${message}`, { cause });
  }

  /** Removes the token, as sent and in the forms an echo may carry it (JSON-escaped, URL-encoded). */
  #scrub(text: string): string {
    const token = this.#token;
    if (!token) return text;
    let out = text;
    for (const form of new Set([token, JSON.stringify(token).slice(1, -1), encodeURIComponent(token)])) {
      out = out.split(form).join('[redacted]');
    }
    return out;
  }
}

function isConnectionReset(err: unknown): boolean {
  const raw = err as RawError | null;
  return raw !== null && typeof raw === 'object' && !raw.isResponse && (raw.code === 'ECONNRESET' || raw.code === 'EPIPE');
}

/**
 * An error body as one line of at most 300 characters. `scrub` runs on the whole text first: cut
 * first, and a token straddling the cut would leave its head behind, where no scrubbing finds it.
 */
function bodyText(body: unknown, scrub: (text: string) => string): string {
  let text: string;
  if (body === undefined || body === null) return '';
  if (typeof body === 'string') text = body;
  else if (Buffer.isBuffer(body)) text = body.toString('utf8');
  else {
    try {
      text = JSON.stringify(body);
    } catch {
      text = '';
    }
  }
  text = scrub(text).trim().replace(/[\u0000-\u001f\u007f]+/g, ' ');
  return text.length > 300 ? `${text.slice(0, 300)}…` : text;
}

/**
 * Calls `onIdleClose` when a pooled keep-alive socket closes while no request uses it. Hooks the
 * agent's documented `keepSocketAlive`/`reuseSocket` extension points.
 */
function reportIdleCloses(agent: HttpAgent, onIdleClose: () => void): void {
  // Node's Agent returns a boolean here (falsy: destroy the socket), although @types/node says void.
  const keepSocketAlive = agent.keepSocketAlive.bind(agent) as (socket: Duplex) => boolean;
  const reuseSocket = agent.reuseSocket.bind(agent);
  const listeners = new WeakMap<Duplex, () => void>();
  Object.assign(agent, {
    keepSocketAlive(socket: Duplex): boolean {
      const kept = keepSocketAlive(socket);
      if (kept) {
        const listener = () => onIdleClose();
        listeners.set(socket, listener);
        socket.once('close', listener);
      }
      return kept;
    },
    reuseSocket(socket: Duplex, request: ClientRequest): void {
      const listener = listeners.get(socket);
      if (listener) {
        socket.off('close', listener);
        listeners.delete(socket);
      }
      reuseSocket(socket, request);
    },
  });
}

/**
 * Caps every answer at `maxResponseBytes`: papi buffers a body whole, so an answer of 100 MB would
 * cost several times that in memory; over the cap, the call fails at once and nothing more is read.
 *
 * papi never listens for a response that ends early (the agent, or something posing as it, closes
 * the connection mid-body): the call would hang until its time limit, a blocking query for its
 * whole wait. Every request made through `agent` fails instead, as a connection reset, the moment
 * its response closes incomplete. Hooks the agent's `addRequest`, which `http.request` calls for
 * every request that uses the agent.
 */
function failCutShortResponses(agent: HttpAgent, maxResponseBytes: number): void {
  type AddRequest = (request: ClientRequest, options: unknown) => void;
  const target = agent as unknown as { addRequest: AddRequest };
  const addRequest = target.addRequest.bind(agent);
  target.addRequest = (request, options) => {
    request.once('response', (response: IncomingMessage) => {
      let size = 0;
      let tooLarge = false;
      const fail = () => {
        tooLarge = true;
        request.emit('error', Object.assign(new Error('answer too large'), { code: TOO_LARGE }));
        response.destroy();
      };
      // A declared length over the limit fails before a byte is read; otherwise count as it comes.
      if (Number(response.headers['content-length']) > maxResponseBytes) return fail();
      response.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > maxResponseBytes && !tooLarge) fail();
      });
      response.once('close', () => {
        if (response.complete || tooLarge) return;
        request.emit('error', Object.assign(new Error('response ended before its body was complete'), { code: 'ECONNRESET' }));
      });
    });
    addRequest(request, options);
  };
}

const unbracket = (host: string) => host.replace(/^\[(.*)\]$/, '$1');

const unbracketedLookup: LookupFunction = (hostname, options, callback) => {
  dnsLookup(unbracket(hostname), options, callback);
};

/**
 * The https agent's share of the TLS settings, as Consul's Go client applies them: the CAs, the
 * client certificate, the server name (SNI and the name the certificate must carry), and
 * verification off (`rejectUnauthorized: false`: neither chain nor name is checked).
 */
function tlsAgentOptions(endpoint: ConsulEndpoint, tls: ConsulTlsConfig): HttpsAgentOptions {
  const options: HttpsAgentOptions = { rejectUnauthorized: tls.verify };
  if (tls.ca !== undefined) options.ca = tls.ca;
  if (tls.cert !== undefined && tls.key !== undefined) Object.assign(options, { cert: tls.cert, key: tls.key });
  const name = tls.serverName;
  if (name !== undefined) {
    // SNI carries host names only (RFC 6066; Node warns about an IP): an IP is only checked.
    if (isIP(name) === 0) options.servername = name;
    options.checkServerIdentity = (_host: string, cert: PeerCertificate) => checkServerIdentity(name, cert);
  } else if (isIpv6Host(endpoint.host)) {
    options.checkServerIdentity = (host: string, cert: PeerCertificate) => checkServerIdentity(unbracket(host), cert);
  }
  return options;
}
