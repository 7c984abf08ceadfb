import cluster from 'node:cluster';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { Server as HttpsServer } from 'node:https';
import { consoleLogger, InvalidOptionsError, SCHEME_META_KEY } from '@peerlb/registry';
import { closeServer } from './close-server.js';
import { drain, InFlight } from './drain.js';
import { StartedHandle, type StartedService } from './handle.js';
import { answerHealth, pathOf } from './health-endpoint.js';
import { createInstanceId } from './instance-id.js';
import { isLeaving } from './lifecycle.js';
import { normaliseStartOptions, type StartConfig, type StartServiceOptions, type StartWorkersOptions } from './options.js';
import { listenOnPort } from './port.js';
import { processHooks, type HookParticipant } from './process-hooks.js';
import { createRequestRateLimiter, type RequestRateLimiter } from './rate-limit/caller-limiter.js';
import { Registration } from './registration.js';
import { createServing, type Serving } from './serving/serving-middleware.js';
import { startPrimary, type ServiceCluster, type WorkerMessage } from './workers/cluster-primary.js';
import { resolveRestart, resolveWorkerCount, workerIndexFromEnv, workerMeta } from './workers/worker-options.js';

/** How long a crashing process gives deregistration before it exits anyway. */
const CRASH_DEREGISTER_BUDGET_MS = 2_000;

/**
 * The whole life of an instance: listens (a given port, a range, or an ephemeral port), serves a
 * health endpoint and the handler, registers once listening succeeded, keeps the registration
 * alive, and on SIGINT/SIGTERM (unless `handleSignals: false`) drains and exits.
 *
 * If listening or registration fails, the server is closed and nothing stays registered.
 */
/**
 * With `workers`: in the primary process, forks the workers and resolves with the
 * `ServiceCluster` once each registered; in each worker (node:cluster runs the same program),
 * starts that worker's own instance and resolves with its `StartedService`.
 */
export function startService(options: StartWorkersOptions): Promise<StartedService | ServiceCluster>;
export function startService(options: StartServiceOptions): Promise<StartedService>;
export async function startService(options: StartServiceOptions | StartWorkersOptions): Promise<StartedService | ServiceCluster> {
  if (options !== null && typeof options === 'object' && 'workers' in options && options.workers !== undefined) {
    return startWorkers(options);
  }
  return startInstance(options);
}

/**
 * The primary supervises; a worker forked by it runs its own instance, with its index, host and
 * pid in `meta`, on its own port, and tells the primary when it registered (or failed to).
 */
async function startWorkers(options: StartWorkersOptions): Promise<StartedService | ServiceCluster> {
  const count = resolveWorkerCount(options.workers);
  const restart = resolveRestart(options.workerRestart);
  if (count > 1 && options.port !== undefined && options.port !== 0) {
    throw new InvalidOptionsError('port', 'with several workers each needs its own port: give portRange, or port 0');
  }
  const index = workerIndexFromEnv();
  if (cluster.isPrimary || index === undefined) {
    // Validates everything a worker would, so a typo fails here once, not in every worker.
    normaliseStartOptions(instanceOptions(options), createInstanceId);
    return startPrimary({
      service: options.service,
      count,
      restart,
      handleSignals: options.handleSignals ?? true,
      startupTimeoutMs: (options.startupTimeoutMs ?? 30_000) + 10_000,
      stopTimeoutMs: (options.drainMs ?? 5_000) + (options.closeTimeoutMs ?? 10_000) + 5_000,
      logger: options.logger ?? consoleLogger,
      signal: options.signal,
    });
  }
  const tell = (message: WorkerMessage) => {
    if (process.connected) process.send?.(message);
  };
  try {
    const handle = await startInstance({ ...instanceOptions(options), meta: { ...options.meta, ...workerMeta(index) } });
    tell({ peerlb: 'worker-ready', id: handle.id, port: handle.port, url: handle.url });
    return handle;
  } catch (err) {
    tell({ peerlb: 'worker-failed', message: (err as Error)?.message ?? String(err), code: (err as { code?: string })?.code });
    throw err;
  }
}

function instanceOptions(options: StartWorkersOptions): StartServiceOptions {
  const { workers: _workers, workerRestart: _restart, ...rest } = options;
  return rest;
}

async function startInstance(options: StartServiceOptions): Promise<StartedService> {
  const cfg = withSchemeMeta(normaliseStartOptions(options, createInstanceId));
  const limiter = cfg.rateLimit === undefined ? undefined : createRequestRateLimiter(cfg.rateLimit);
  const serving = createServing(cfg.serving);
  const registration = new Registration(cfg.registration);
  const inFlight = new InFlight();
  const { server, restore } = prepareServer(cfg, registration, limiter, serving, inFlight);

  const startup = new AbortController();
  const userSignal = cfg.registration.signal;
  const onUserAbort = () => startup.abort(userSignal?.reason);
  if (userSignal?.aborted) onUserAbort();
  else userSignal?.addEventListener('abort', onUserAbort, { once: true });

  let handle: StartedHandle | undefined;
  let startupSettled: Promise<unknown> = Promise.resolve();
  const participant: HookParticipant = {
    async shutdown() {
      if (handle) return handle.close();
      startup.abort(new Error('shutdown signal during startup'));
      await startupSettled.catch(() => {});
    },
    crash: () => registration.crashLeave(CRASH_DEREGISTER_BUDGET_MS),
  };
  const removeSignalHook = cfg.handleSignals ? processHooks().onSignals(participant) : () => {};
  const removeCrashHook = cfg.handleCrashes ? processHooks().onCrash(participant) : () => {};
  const removeHooks = () => {
    removeSignalHook();
    removeCrashHook();
  };

  let port: number;
  try {
    const starting = (async () => {
      const p = await listenOnPort(server, cfg.port, { ...(cfg.host !== undefined ? { host: cfg.host } : {}), signal: startup.signal });
      await registration.start(p, startup.signal);
      return p;
    })();
    startupSettled = starting;
    port = await starting;
  } catch (err) {
    userSignal?.removeEventListener('abort', onUserAbort);
    await closeServer(server, 0);
    restore();
    serving.close();
    await registration.finish();
    removeHooks();
    throw err;
  }
  userSignal?.removeEventListener('abort', onUserAbort);

  const scheme = server instanceof HttpsServer ? 'https' : 'http';
  const address = cfg.registration.address;
  const url = `${scheme}://${address.includes(':') ? `[${address}]` : address}:${port}`;
  handle = new StartedHandle(
    registration,
    port,
    async () => {
      // Health answers 503 from here on; then leave the registry, then keep serving so callers
      // that have not yet seen the removal still get answers (drain.ts: at most drainMs, less
      // once provably done), then close.
      registration.markDraining();
      const deregistered = await registration.leave();
      if (cfg.drainMs > 0) {
        await drain({ drainMs: cfg.drainMs, propagationMs: cfg.drainPropagationMs, deregistered, inFlight });
      }
      await closeServer(server, cfg.closeTimeoutMs);
      serving.close();
      await registration.finish();
      removeHooks();
    },
    userSignal,
    server,
    url,
    serving,
  );
  return handle;
}

/**
 * An https server is registered with `meta.scheme: 'https'`, which is how callers (the peerlb
 * client) know to dial it over TLS. A scheme the caller set explicitly is kept (e.g. TLS ended by
 * a proxy in front of the instance).
 */
function withSchemeMeta(cfg: StartConfig): StartConfig {
  const https = cfg.listener.kind === 'server' && cfg.listener.server instanceof HttpsServer;
  if (!https || cfg.registration.meta[SCHEME_META_KEY] !== undefined) return cfg;
  const meta = Object.freeze({ ...cfg.registration.meta, [SCHEME_META_KEY]: 'https' });
  return { ...cfg, registration: { ...cfg.registration, meta } };
}

type UserListener = (req: IncomingMessage, res: ServerResponse) => unknown;

/**
 * Puts the health endpoint, the serving steps (load report, ...) and the rate limiter in front of
 * the user's listener. Health answers skip the steps: registry polls are not traffic. For a given
 * server, its existing `request` listeners are moved behind ours (and put back if startup fails).
 */
function prepareServer(
  cfg: StartConfig,
  registration: Registration,
  limiter: RequestRateLimiter | undefined,
  serving: Serving,
  inFlight: InFlight,
): { server: Server; restore: () => void } {
  const reportError = (err: unknown) =>
    registration.events.emit('error', err instanceof Error ? err : new Error(String(err)));

  const front = (user: UserListener) => {
    const served = serving.wrap((req, res) => limitThenServe(user, req, res));
    return (req: IncomingMessage, res: ServerResponse) => {
      // While leaving, every response closes its connection so no keep-alive socket outlives the drain.
      if (isLeaving(registration.state)) res.setHeader('connection', 'close');
      if (pathOf(req.url) === cfg.healthPath) {
        answerHealth(req, res, () => registration.endpointHealth()).catch((err: unknown) => {
          reportError(err);
          failResponse(res);
        });
        return;
      }
      inFlight.track(res);
      try {
        served(req, res);
      } catch (err) {
        reportError(err);
        failResponse(res);
      }
    };
  };

  const limitThenServe = (user: UserListener, req: IncomingMessage, res: ServerResponse): void => {
    if (limiter) {
      const decision = limiter.check(req);
      if (!decision.allowed) {
        const body = '{"error":"rate limited"}';
        res.writeHead(429, {
          'retry-after': String(Math.max(1, Math.ceil(decision.retryAfterMs / 1000))),
          'content-type': 'application/json',
          'content-length': Buffer.byteLength(body),
        });
        res.end(body);
        return;
      }
    }
    try {
      const result = user(req, res);
      if (result !== null && typeof result === 'object' && typeof (result as Promise<unknown>).then === 'function') {
        (result as Promise<unknown>).then(undefined, (err: unknown) => {
          reportError(err);
          failResponse(res);
        });
      }
    } catch (err) {
      reportError(err);
      failResponse(res);
    }
  };

  if (cfg.listener.kind === 'handler') {
    return { server: createServer(front(cfg.listener.fn)), restore: () => {} };
  }
  const server = cfg.listener.server;
  const originals = server.listeners('request') as UserListener[];
  const user: UserListener = (req, res) => {
    for (const listener of originals) listener.call(server, req, res);
  };
  const wrapped = front(user);
  server.removeAllListeners('request');
  server.on('request', wrapped);
  return {
    server,
    restore: () => {
      server.off('request', wrapped);
      for (const listener of originals) server.on('request', listener);
    },
  };
}

function failResponse(res: ServerResponse): void {
  if (!res.headersSent) {
    res.writeHead(500, { 'content-type': 'text/plain' });
    res.end('internal error');
  } else {
    res.destroy();
  }
}
