// One instance of one mesh service, in its own process. Started by the supervisor (cli.ts) with
// fork(): argv[2] is its InstanceConfig as JSON, and it reports `ready`/`failed` over IPC.
import { randomBytes } from 'node:crypto';
import { createClient, p2c, peakEwma } from '@peerlb/client';
import { startService, type StartServiceOptions, type StartedService } from '@peerlb/registration';
import { registryFromEnv } from '@peerlb/registry';
import { InstanceServer } from './instance-server.js';
import { startPrometheusMetrics } from './metrics.js';
import { BACKEND_HEDGE_DELAY_MS, GATEWAY_BUDGET_MS, isServiceName, type InstanceConfig, type InstanceMessage } from './protocol.js';
import { SERVICE_FACTORIES } from './services/index.js';

// Gateway ports tried after the one asked for, when it is taken.
const GATEWAY_PORT_TRIES = 100;
const LEAVING = new Set(['draining', 'deregistered', 'closed']);

function parseConfig(raw: string | undefined): InstanceConfig {
  const config = JSON.parse(raw ?? 'null') as InstanceConfig | null;
  if (config === null || typeof config !== 'object' || !isServiceName(config.service)) {
    throw new Error('usage: node dist/instance.js \'{"service":"catalog","label":"catalog#1","drainMs":2000,"userRatePerSec":20}\'');
  }
  return config;
}

function send(message: InstanceMessage, then?: () => void): void {
  if (process.send !== undefined && process.connected) process.send(message, undefined, {}, () => then?.());
  else then?.();
}

// The supervisor reads our output through pipes; if it is gone, a write must not crash us.
process.stdout.on('error', () => {});
process.stderr.on('error', () => {});

const config = parseConfig(process.argv[2]);
// Both the registration and the client use the registry of the environment: Consul when
// CONSUL_HTTP_ADDR is set, else the local registry directory (PEERLB_REGISTRY_DIR).
const registry = registryFromEnv();
// Registered before the client and the service exist: they find the meter provider when built.
const prometheus = startPrometheusMetrics();
const isGateway = config.service === 'gateway';
const client = createClient({
  registry,
  closeRegistry: true,
  // Backends call as themselves; the gateway names the end user on each call (see gateway.ts).
  caller: config.service,
  balancer: p2c({ metric: peakEwma({ decayMs: config.ewmaDecayMs }) }),
  timeoutMs: isGateway ? 5_000 : 3_000,
  // At the gateway: a bucket per end user. Elsewhere: a generous ceiling per calling process.
  rateLimit: isGateway
    ? { ratePerSec: config.userRatePerSec, burst: config.userRatePerSec }
    : { ratePerSec: 500, burst: 500 },
  // Backends hedge their GETs to pricing and inventory: no answer after 50 ms (these answer in a
  // few ms), one more attempt on another instance; the first answer wins. Budgeted: see the
  // client README, Hedged requests.
  ...(isGateway ? {} : { hedge: { delayMs: BACKEND_HEDGE_DELAY_MS } }),
});

const id = `${config.service}-${randomBytes(6).toString('base64url')}`;
let handle: StartedService | undefined;
let registeredAt: number | null = null;
const server = new InstanceServer(
  {
    service: config.service,
    label: config.label,
    id: () => id,
    url: () => handle?.url ?? '',
    state: () => handle?.state ?? 'starting',
    registeredAt: () => registeredAt,
    deadlineStats: () => handle?.stats().deadline ?? null,
    eventLoopUtilization: () => handle?.load()?.utilization ?? null,
  },
  SERVICE_FACTORIES[config.service]({ client, userRatePerSec: config.userRatePerSec }),
  client,
  prometheus.handle,
);

const common: StartServiceOptions = {
  service: config.service,
  id,
  registry,
  handler: server.handle,
  health: server.health,
  drainMs: config.drainMs,
  meta: { label: config.label },
  // The gateway gives each request from outside a budget; every call made for it, at every hop,
  // inherits what is left (x-peerlb-timeout), and backends stop work whose budget ran out.
  ...(isGateway ? { serving: { deadline: { defaultMs: GATEWAY_BUDGET_MS } } } : {}),
  on: {
    registered: () => {
      registeredAt = Date.now();
    },
  },
};

async function start(): Promise<StartedService> {
  if (config.workers !== undefined) {
    // A node:cluster worker of instance-primary.ts: startService takes the worker path (its own
    // port, meta worker/host/pid) and tells the primary when it registered.
    const started = await startService({ ...common, workers: config.workers, ...(config.portRange ? { portRange: config.portRange } : { port: 0 }) });
    if ('primary' in started) throw new Error('instance.js runs as a worker; start instance-primary.js for workers');
    return started;
  }
  if (config.port === undefined || config.port === 0) {
    return startService({ ...common, ...(config.portRange ? { portRange: config.portRange } : { port: 0 }) });
  }
  // The gateway: the port asked for, or the next free one.
  let lastError: unknown;
  for (let port = config.port; port < config.port + GATEWAY_PORT_TRIES && port <= 65_535; port++) {
    try {
      return await startService({ ...common, port });
    } catch (err) {
      if ((err as { code?: unknown }).code !== 'PEERLB_PORT_UNAVAILABLE') throw err;
      lastError = err;
    }
  }
  throw lastError;
}

// If the supervisor dies (even SIGKILLed), the IPC channel closes: leave cleanly rather than stay
// behind registered. SIGTERM runs startService's shutdown: deregister, drain, exit.
process.on('disconnect', () => {
  if (!LEAVING.has(handle?.state ?? '')) process.kill(process.pid, 'SIGTERM');
});

try {
  handle = await start();
  handle.on('closed', () => {
    void client.close();
    void prometheus.close();
  });
  send({
    type: 'ready',
    id: handle.id,
    service: config.service,
    port: handle.port,
    url: handle.url,
    pid: process.pid,
    registeredAt: registeredAt ?? Date.now(),
  });
} catch (err) {
  const e = err as { message?: unknown; code?: unknown };
  const message = typeof e?.message === 'string' ? e.message : String(err);
  process.stderr.write(`${config.label}: could not start: ${message}\n`);
  await client.close().catch(() => {});
  send({ type: 'failed', message, ...(typeof e?.code === 'string' ? { code: e.code } : {}) }, () => process.exit(1));
}
