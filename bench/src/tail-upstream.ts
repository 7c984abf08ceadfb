/**
 * An upstream for the tail and overload scenarios (issue 15), in its own process: answers its id
 * after `baseMs`, or `baseMs * slowFactor` for a `slowShare` of requests (a slow tail). With
 * `capacity`, at most that many requests are worked on at once and the rest wait in a FIFO queue
 * (a saturated server). A request whose caller went away (an aborted hedge loser) is dropped from
 * the queue, or its work stopped, as a peerlb serving side does when its deadline signal fires.
 *
 * Tells the parent `{ type: 'ready', port }`; answers `{ type: 'report' }` with its counters.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { childConfig, serveChild, toParent } from './child.js';

export interface TailUpstreamConfig {
  readonly id: string;
  readonly baseMs: number;
  readonly slowShare: number;
  readonly slowFactor: number;
  /** Requests worked on at once; 0: no limit. */
  readonly capacity: number;
}

interface Job {
  readonly res: ServerResponse;
  readonly workMs: number;
}

const config = childConfig<TailUpstreamConfig>();
const body = Buffer.from(config.id);
const headers = { 'content-type': 'text/plain', 'content-length': String(body.length) };
const counters = { received: 0, completed: 0, abandoned: 0 };
const queue: Job[] = [];
let busy = 0;

function start(job: Job): void {
  busy++;
  const timer = setTimeout(() => {
    job.res.off('close', onClose);
    busy--;
    counters.completed++;
    if (!job.res.destroyed) {
      job.res.writeHead(200, headers);
      job.res.end(body);
    }
    next();
  }, job.workMs);
  const onClose = () => {
    // The caller gave up mid-work: stop and free the slot.
    clearTimeout(timer);
    busy--;
    counters.abandoned++;
    next();
  };
  job.res.once('close', onClose);
}

function next(): void {
  while (queue.length > 0 && (config.capacity === 0 || busy < config.capacity)) {
    const job = queue.shift()!;
    if (job.res.destroyed || job.res.writableEnded) {
      counters.abandoned++;
      continue;
    }
    start(job);
  }
}

function handler(_req: IncomingMessage, res: ServerResponse): void {
  counters.received++;
  const workMs = Math.random() < config.slowShare ? config.baseMs * config.slowFactor : config.baseMs;
  queue.push({ res, workMs });
  next();
}

serveChild(createServer(handler), (message) => {
  if (message?.type === 'report') toParent({ type: 'report', ...counters });
  if (message?.type === 'reset') {
    counters.received = counters.completed = counters.abandoned = 0;
    toParent({ type: 'reset' });
  }
});
