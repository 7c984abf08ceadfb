/**
 * The clients compared, each behind one signature: `send()` makes one GET and resolves with the
 * body (the answering upstream's id). Every mode uses the same concurrency, the same per-origin
 * connection limit and reads the body the same way (`text()`).
 */
import { request as httpRequest } from 'node:http';
import { BalancedPool, Pool, request as undiciRequest, type Dispatcher } from 'undici';
import {
  balancedRequest,
  closeDefaultClient,
  createClient,
  getDefaultClient,
  p2c,
  roundRobin,
  type Client,
} from '@peerlb/client';
import { ConsulRegistry, LocalRegistry, MemoryRegistry, silentLogger, type Registry } from '@peerlb/registry';
import type { Target } from './upstreams.js';

export type RegistrySpec =
  | { readonly kind: 'static' }
  | { readonly kind: 'local'; readonly dir: string }
  | { readonly kind: 'consul'; readonly address: string };

export type LoadMode =
  /** `balancedRequest()`: the default client, registry from the environment (PEERLB_REGISTRY_DIR). */
  | { readonly kind: 'peerlb-default' }
  /** `createClient()` with an explicit registry; `breaker: false` turns breakers off, `bare` also outlier ejection and retries. */
  | {
      readonly kind: 'peerlb';
      readonly registry: RegistrySpec;
      readonly balancer?: 'p2c' | 'round-robin';
      readonly bare?: boolean;
      readonly breaker?: false;
    }
  /** `undici.request()` with `client.dispatcher()` of a client built as the default one (local registry). */
  | { readonly kind: 'peerlb-dispatcher'; readonly registryDir: string }
  /** One undici `Pool` per upstream, round-robined by hand: the ceiling. */
  | { readonly kind: 'raw' }
  /** The same pools through undici's top-level `request(url, { dispatcher: pool })`: the Dispatcher row's own baseline. */
  | { readonly kind: 'raw-undici-request' }
  /** undici's `BalancedPool` over the upstreams. */
  | { readonly kind: 'balanced-pool' }
  /** One undici `Pool` to an nginx reverse proxy in front of the upstreams. */
  | { readonly kind: 'proxy'; readonly port: number }
  /** What people write first: a registry lookup and a new connection per request. */
  | { readonly kind: 'naive'; readonly registryDir: string };

export interface ModeOptions {
  readonly service: string;
  readonly targets: readonly Target[];
  /** Most sockets per origin (every mode). */
  readonly connections: number;
  readonly timeoutMs: number;
}

export interface Sender {
  send(): Promise<string>;
  /** The peerlb client behind it, when there is one (stats for the failover scenario). */
  readonly client: Client | undefined;
  close(): Promise<void>;
}

const origin = (port: number) => `http://127.0.0.1:${port}`;

async function readBody(data: Dispatcher.ResponseData): Promise<string> {
  const text = await data.body.text();
  if (data.statusCode !== 200) throw new Error(`status ${data.statusCode}`);
  return text;
}

export function createSender(mode: LoadMode, o: ModeOptions): Sender {
  switch (mode.kind) {
    case 'peerlb-default':
      return peerlbDefault(o);
    case 'peerlb':
      return peerlb(mode, o);
    case 'peerlb-dispatcher':
      return peerlbDispatcher(mode.registryDir, o);
    case 'raw':
      return raw(o);
    case 'raw-undici-request':
      return rawUndiciRequest(o);
    case 'balanced-pool':
      return balancedPool(o);
    case 'proxy':
      return proxy(mode.port, o);
    case 'naive':
      return naive(mode.registryDir, o);
  }
}

function peerlbDefault(o: ModeOptions): Sender {
  const options = { service: o.service, path: '/', timeoutMs: o.timeoutMs };
  return {
    async send() {
      const res = await balancedRequest(options);
      const text = await res.body.text();
      if (res.statusCode !== 200) throw new Error(`status ${res.statusCode}`);
      return text;
    },
    get client() {
      return getDefaultClient();
    },
    close: () => closeDefaultClient(),
  };
}

export function openRegistry(spec: RegistrySpec, service: string, targets: readonly Target[]): Registry {
  switch (spec.kind) {
    case 'static':
      return new MemoryRegistry({
        logger: silentLogger,
        instances: targets.map((t) => ({ id: t.id, service, address: '127.0.0.1', port: t.port })),
      });
    case 'local':
      return new LocalRegistry({ dir: spec.dir, logger: silentLogger });
    case 'consul':
      return new ConsulRegistry({ address: spec.address, logger: silentLogger });
  }
}

function peerlb(mode: Extract<LoadMode, { kind: 'peerlb' }>, o: ModeOptions): Sender {
  const client = createClient({
    registry: openRegistry(mode.registry, o.service, o.targets),
    closeRegistry: true,
    balancer: mode.balancer === 'round-robin' ? roundRobin() : p2c(),
    pool: { connections: o.connections },
    timeoutMs: o.timeoutMs,
    logger: silentLogger,
    ...(mode.breaker === false ? { breaker: false as const } : {}),
    ...(mode.bare ? { breaker: false as const, outlier: false as const, retry: false as const } : {}),
  });
  const options = { service: o.service, path: '/' };
  return {
    async send() {
      const res = await client.request(options);
      const text = await res.body.text();
      if (res.statusCode !== 200) throw new Error(`status ${res.statusCode}`);
      return text;
    },
    client,
    close: () => client.close(),
  };
}

function peerlbDispatcher(registryDir: string, o: ModeOptions): Sender {
  // The same settings balancedRequest()'s default client has, so the two rows compare front doors.
  const client = createClient({
    registry: new LocalRegistry({ dir: registryDir, logger: silentLogger }),
    closeRegistry: true,
    pool: { connections: o.connections },
    timeoutMs: o.timeoutMs,
    logger: silentLogger,
  });
  const dispatcher = client.dispatcher(o.service);
  const url = `http://${o.service}/`;
  const options = { dispatcher, method: 'GET' as const };
  return {
    async send() {
      return readBody(await undiciRequest(url, options));
    },
    client,
    close: () => client.close(),
  };
}

function raw(o: ModeOptions): Sender {
  const pools = o.targets.map((t) => new Pool(origin(t.port), { connections: o.connections }));
  const options: Dispatcher.RequestOptions = { path: '/', method: 'GET' };
  let next = 0;
  return {
    async send() {
      const pool = pools[next]!;
      next = next + 1 === pools.length ? 0 : next + 1;
      return readBody(await pool.request(options));
    },
    client: undefined,
    close: async () => {
      await Promise.all(pools.map((p) => p.close()));
    },
  };
}

function rawUndiciRequest(o: ModeOptions): Sender {
  // undici.request(url, opts) parses the URL and copies the options on every call, which
  // pool.request(opts) does not: what a caller of client.dispatcher() pays before peerlb does anything.
  const pools = o.targets.map((t) => ({ pool: new Pool(origin(t.port), { connections: o.connections }), url: `${origin(t.port)}/` }));
  let next = 0;
  return {
    async send() {
      const target = pools[next]!;
      next = next + 1 === pools.length ? 0 : next + 1;
      return readBody(await undiciRequest(target.url, { dispatcher: target.pool, method: 'GET' }));
    },
    client: undefined,
    close: async () => {
      await Promise.all(pools.map((p) => p.pool.close()));
    },
  };
}

function balancedPool(o: ModeOptions): Sender {
  const pool = new BalancedPool(
    o.targets.map((t) => origin(t.port)),
    { connections: o.connections },
  );
  const options: Dispatcher.RequestOptions = { path: '/', method: 'GET' };
  return {
    async send() {
      return readBody(await pool.request(options));
    },
    client: undefined,
    close: () => pool.close(),
  };
}

function proxy(port: number, o: ModeOptions): Sender {
  // The proxy is one origin: the same number of sockets the other modes have to all upstreams.
  const pool = new Pool(origin(port), { connections: o.connections * o.targets.length });
  const options: Dispatcher.RequestOptions = { path: '/', method: 'GET' };
  return {
    async send() {
      return readBody(await pool.request(options));
    },
    client: undefined,
    close: () => pool.close(),
  };
}

function naive(registryDir: string, o: ModeOptions): Sender {
  const registry = new LocalRegistry({ dir: registryDir, logger: silentLogger });
  return {
    async send() {
      const instances = await registry.list(o.service);
      if (instances.length === 0) throw new Error('no instances');
      const pick = instances[Math.floor(Math.random() * instances.length)]!;
      // agent: false = a new TCP connection per request, closed after it (Connection: close).
      return new Promise<string>((resolve, reject) => {
        const req = httpRequest(
          { host: pick.address, port: pick.port, path: '/', agent: false, timeout: o.timeoutMs },
          (res) => {
            let text = '';
            res.setEncoding('utf8');
            res.on('data', (chunk: string) => (text += chunk));
            res.on('end', () => (res.statusCode === 200 ? resolve(text) : reject(new Error(`status ${res.statusCode}`))));
            res.on('error', reject);
          },
        );
        req.on('timeout', () => req.destroy(new Error('timeout')));
        req.on('error', reject);
        req.end();
      });
    },
    client: undefined,
    close: () => registry.close(),
  };
}
