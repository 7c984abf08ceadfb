import type { IncomingMessage, ServerResponse } from 'node:http';
import type { LoadReporter } from './load-report.js';
import type { ServingHandler, ServingStep } from './serving-step.js';
import { builtinSteps, type ServingOptions } from './serving-steps.js';

/** The counters of the steps that keep some, by step name (e.g. `deadline`: `DeadlineStats`). */
export interface ServingStats {
  readonly deadline?: import('./deadline-step.js').DeadlineStats;
  readonly [step: string]: object | undefined;
}

/** Express-style middleware: `app.use(serving.express)`. */
export type ExpressStyleMiddleware = (req: IncomingMessage, res: ServerResponse, next: (err?: unknown) => void) => void;

/** Fastify-style `onRequest` hook: `fastify.addHook('onRequest', serving.fastify)`. */
export type FastifyStyleHook = (
  request: { raw: IncomingMessage },
  reply: { raw: ServerResponse },
  done: (err?: Error) => void,
) => void;

/** The serving steps of an instance, and the ways to put them in front of a server. */
export interface Serving {
  /** The steps in the order they run (the load report first). */
  readonly steps: readonly ServingStep[];
  /** What the load report step measures (undefined with `loadReport: false`). */
  readonly loadReporter: LoadReporter | undefined;
  /** A handler that runs every step, then `handler`. */
  wrap(handler: ServingHandler): ServingHandler;
  /** The steps as Express-style middleware (register it before your routes). */
  readonly express: ExpressStyleMiddleware;
  /**
   * The steps as a Fastify-style `onRequest` hook, on `request.raw`/`reply.raw`. A step that runs
   * the rest of the request inside a context (AsyncLocalStorage) covers what Fastify runs from
   * `done()`, which includes the route handler.
   */
  readonly fastify: FastifyStyleHook;
  /** Releases what the steps own (e.g. an event-loop delay histogram). */
  close(): void;
  /** Each step's counters, by step name. */
  stats(): ServingStats;
}

/**
 * The one serving-side wrapper: `startService` puts it in front of its own server, and servers
 * users start themselves use it through `wrap`, `express` or `fastify`. Built-in steps come from
 * `servingOptions`; `extraSteps` run after them.
 */
export function createServing(options: ServingOptions = {}, extraSteps: readonly ServingStep[] = []): Serving {
  const builtin = builtinSteps(options);
  const steps = Object.freeze([...builtin.steps, ...extraSteps]);
  const nextOf = new WeakMap<IncomingMessage, (err?: unknown) => void>();
  // The Express/Fastify continuation is per request; a WeakMap keeps the composed chain built once.
  const callNext: ServingHandler = (req) => {
    const next = nextOf.get(req);
    nextOf.delete(req);
    next?.();
  };
  const chained = composeSteps(steps, callNext);
  return {
    steps,
    loadReporter: builtin.reporter,
    wrap: (handler) => composeSteps(steps, handler),
    express: (req, res, next) => {
      nextOf.set(req, next);
      runGuarded(chained, req, res, next);
    },
    fastify: (request, reply, done) => {
      nextOf.set(request.raw, done as (err?: unknown) => void);
      runGuarded(chained, request.raw, reply.raw, done as (err?: unknown) => void);
    },
    close: () => {
      for (const step of steps) step.close?.();
    },
    stats: () => {
      const stats: Record<string, object> = {};
      for (const step of steps) if (step.stats !== undefined) stats[step.name] = step.stats();
      return stats;
    },
  };
}

/** Builds the chain once, so a request costs one call per step and no allocation here. */
export function composeSteps(steps: readonly ServingStep[], handler: ServingHandler): ServingHandler {
  let next = handler;
  for (let i = steps.length - 1; i >= 0; i--) {
    const step = steps[i]!;
    const inner = next;
    next = (req, res) => step.handle(req, res, inner);
  }
  return next;
}

function runGuarded(
  chain: ServingHandler,
  req: IncomingMessage,
  res: ServerResponse,
  onError: (err?: unknown) => void,
): void {
  try {
    chain(req, res);
  } catch (err) {
    onError(err);
  }
}
