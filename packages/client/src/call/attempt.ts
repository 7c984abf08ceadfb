import { LOAD_REPORT_HEADER } from '../balancer/index.js';
import type { PeerBreaker } from '../resilience/index.js';
import type { Peer } from '../peers/peer.js';
import type { ServicePeers } from '../peers/service-peers.js';
import type { Deadline, DeadlineQueue } from './deadlines.js';
import type { AttemptOutcome } from './outcome.js';

/** What an attempt needs from the call it belongs to (the call loop implements it). */
export interface AttemptOwner {
  readonly svc: ServicePeers;
  readonly clock: () => number;
  readonly deadlines: DeadlineQueue;
  /** Sends the attempt through the front door's transport. */
  send(attempt: Attempt): void;
  /** Telemetry hears every attempt's outcome (undefined: no telemetry). */
  attemptEnded?(attempt: Attempt, outcome: AttemptOutcome): void;
  /** The attempt failed before an answer came: refused by its breaker, a transport error, a timeout. */
  attemptFailed(attempt: Attempt, error: unknown): void;
  /** The attempt's own timeout (`attemptTimeoutMs`) passed before its response headers came. */
  attemptTimedOut(attempt: Attempt): void;
  /** Something the door threw where no caller up the stack would catch it (a caller's handler). */
  reportThrown(error: unknown): void;
}

const NO_BREAKER = 0;
/** Closed breaker: the attempt runs on its own, the breaker hears the outcome in `done`. */
const DIRECT = 1;
/** Half-open trial (or opossum's own timeout): the breaker runs the attempt, `done` settles it. */
const TRIAL = 2;

type Listener = () => void;

/**
 * One attempt on one peer: the pick result of the call loop. It carries `done(outcome)`, the one
 * place every piece of feedback goes (load tracker, breaker, outlier detection, peer stats), and
 * it is also the attempt's abort signal for the transport (undici accepts any emitter of one
 * `abort` event with `aborted` and `reason`: an `AbortController` per attempt was the costliest
 * allocation of the request path), and its entry in the per-attempt timeout queue.
 */
export class Attempt implements Deadline {
  readonly peer: Peer;
  /** 1-based number of the attempt within its call. */
  readonly number: number;
  /** Clock reading when the attempt started. */
  readonly startedAt: number;
  /** The response headers came (the door may still be reading the body). */
  isAnswered = false;
  /** `done` ran: every listener has heard how the attempt ended. */
  settled = false;
  /** Its OpenTelemetry span (opaque here, see `CallTelemetry`), when the call is traced. */
  span: object | undefined = undefined;
  // Abort signal, read by undici.
  aborted = false;
  reason: unknown = undefined;
  #listeners: Listener[] | undefined;
  // Per-attempt timeout links, owned by the deadline queue.
  dueAt = 0;
  previousDue: Deadline | undefined = undefined;
  nextDue: Deadline | undefined = undefined;
  lane: Deadline['lane'] = undefined;
  readonly #owner: AttemptOwner;
  #completion: ((outcome: AttemptOutcome, now: number) => void) | undefined;
  #guard = NO_BREAKER;
  #breaker: PeerBreaker | undefined;
  #trial: { resolve: () => void; reject: (error: unknown) => void } | undefined;
  #judged: Promise<void> | undefined;

  constructor(owner: AttemptOwner, peer: Peer, number: number, now: number) {
    this.#owner = owner;
    this.peer = peer;
    this.number = number;
    this.startedAt = now;
  }

  /**
   * Guard, then send: the load tracker counts the attempt in flight, the per-attempt timeout is
   * armed, and the peer's breaker admits it (or refuses: the attempt fails with nothing sent).
   */
  begin(attemptTimeoutMs: number): void {
    const owner = this.#owner;
    const peer = this.peer;
    peer.requests++;
    this.#completion = peer.tracker.start(this.startedAt);
    if (attemptTimeoutMs !== Infinity) owner.deadlines.add(this, attemptTimeoutMs);
    const breaker = peer.breakerForCall();
    if (breaker === undefined) return owner.send(this);
    this.#breaker = breaker;
    if (breaker.admitsDirectCall()) {
      // The common case, without a promise around the attempt.
      this.#guard = DIRECT;
      return owner.send(this);
    }
    this.#guard = TRIAL;
    let started = false;
    const judged = breaker.run(() => {
      started = true;
      const outcome = new Promise<void>((resolve, reject) => {
        this.#trial = { resolve, reject };
      });
      owner.send(this);
      return outcome;
    });
    this.#judged = judged.then(noop, noop);
    judged
      .catch((err: unknown) => {
        if (started) return;
        // Refused (open, its trial taken, shut down): nothing was sent, the breaker has nothing to hear.
        this.#guard = NO_BREAKER;
        owner.attemptFailed(this, err);
      })
      .catch((err: unknown) => owner.reportThrown(err));
  }

  /** The response headers came: the per-attempt timeout no longer applies. */
  answered(): void {
    this.isAnswered = true;
    if (this.lane !== undefined) this.#owner.deadlines.remove(this);
  }

  /**
   * Reports how the attempt ended, once (later calls are ignored). Returns a promise when the
   * breaker judges a failure asynchronously: it settles once the breaker's state reflects it.
   */
  done(outcome: AttemptOutcome): Promise<void> | undefined {
    if (this.settled) return undefined;
    this.settled = true;
    const owner = this.#owner;
    if (this.lane !== undefined) owner.deadlines.remove(this);
    const now = owner.clock();
    const completion = this.#completion;
    this.#completion = undefined;
    completion?.(outcome, now);
    owner.svc.record(this.peer, outcome, now);
    // The peer's own view of its load, when its answer carried one (both front doors land here).
    const headers = outcome.headers;
    if (headers !== undefined) owner.svc.loadReport(this.peer, headers[LOAD_REPORT_HEADER], now);
    owner.attemptEnded?.(this, outcome);
    if (this.#guard === DIRECT) {
      if (outcome.kind === 'success') {
        this.#breaker!.succeeded();
        return undefined;
      }
      return this.#breaker!.failed(faultOf(outcome));
    }
    if (this.#guard === TRIAL) {
      const trial = this.#trial;
      if (outcome.kind === 'success') trial?.resolve();
      else trial?.reject(faultOf(outcome));
      return this.#judged;
    }
    return undefined;
  }

  /** Per-attempt timeout (called by the deadline queue). */
  expire(): void {
    this.#owner.attemptTimedOut(this);
  }

  // --- abort signal (undici's EventEmitter form) ---------------------------------------------

  on(event: string, listener: Listener): this {
    if (event === 'abort') (this.#listeners ??= []).push(listener);
    return this;
  }

  once(event: string, listener: Listener): this {
    // Fires at most once anyway: abort() drops every listener.
    return this.on(event, listener);
  }

  removeListener(event: string, listener: Listener): this {
    const listeners = this.#listeners;
    if (event !== 'abort' || listeners === undefined) return this;
    const i = listeners.indexOf(listener);
    if (i >= 0) listeners.splice(i, 1);
    return this;
  }

  off(event: string, listener: Listener): this {
    return this.removeListener(event, listener);
  }

  /** Stops the attempt: the transport drops it (or, once delivered, cuts its body) with `reason`. */
  abort(reason: unknown): void {
    if (this.aborted) return;
    this.aborted = true;
    this.reason = reason;
    const listeners = this.#listeners;
    this.#listeners = undefined;
    if (listeners === undefined) return;
    for (const listener of listeners) {
      try {
        listener();
      } catch (err) {
        // Every listener must hear the abort; a throwing one is reported the way undici does.
        queueMicrotask(() => {
          throw err;
        });
      }
    }
  }
}

/** What the breaker's fault rule judges: the error, or the failing status as `{ statusCode }`. */
function faultOf(outcome: AttemptOutcome): unknown {
  return outcome.error ?? { statusCode: outcome.statusCode };
}

function noop(): void {}
