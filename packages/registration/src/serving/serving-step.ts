import type { IncomingMessage, ServerResponse } from 'node:http';

// The contract between the serving wrapper and its steps, in a module of its own so that steps and
// the wrapper that lists them both depend on it and not on each other.

/** A node:http request handler, the shape every serving step wraps. */
export type ServingHandler = (req: IncomingMessage, res: ServerResponse) => unknown;

/**
 * One small job done for every request an instance answers (report load, propagate a deadline,
 * open a span). `handle` does its part and calls `next(req, res)` exactly once, returning what
 * `next` returned, so an async handler's promise reaches whoever reports its rejection. A step
 * may answer the request itself instead of calling `next`. `close()` releases what the step owns.
 */
export interface ServingStep {
  readonly name: string;
  handle(req: IncomingMessage, res: ServerResponse, next: ServingHandler): unknown;
  close?(): void;
  /** What the step counted, reported by `Serving.stats()` under the step's name. */
  stats?(): object;
}
