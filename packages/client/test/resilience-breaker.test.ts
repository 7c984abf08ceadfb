import { afterEach, describe, expect, it } from 'vitest';
import { ClosedError, InvalidOptionsError } from '@peerlb/registry';
import {
  BreakerFactory,
  BreakerOpenError,
  isPeerFault,
  type BreakerOptions,
  type BreakerState,
  type PeerBreaker,
} from '../src/resilience/index.js';

const factories: BreakerFactory[] = [];
afterEach(() => {
  for (const f of factories.splice(0)) f.close();
});

function factory(options: BreakerOptions = {}): BreakerFactory {
  const f = new BreakerFactory({
    volumeThreshold: 4,
    errorThresholdPercentage: 50,
    resetTimeoutMs: 100,
    rollingCountTimeoutMs: 10_000,
    ...options,
  });
  factories.push(f);
  return f;
}

async function waitFor(cond: () => boolean, timeoutMs = 3000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > until) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 5));
  }
}

const refused = () => Promise.reject(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }));
const ok = () => Promise.resolve('ok');

async function trip(breaker: PeerBreaker, failures = 4): Promise<void> {
  for (let i = 0; i < failures; i++) await breaker.run(refused).catch(() => undefined);
}

function recorder(breaker: PeerBreaker): Array<[BreakerState, BreakerState]> {
  const seen: Array<[BreakerState, BreakerState]> = [];
  breaker.onStateChange((state, previous) => seen.push([state, previous]));
  return seen;
}

describe('PeerBreaker (opossum 9)', () => {
  it('starts closed and passes calls through, with their result', async () => {
    const b = factory().create('p1');
    expect(b.state).toBe('closed');
    expect(b.allowsCall).toBe(true);
    await expect(b.run(ok)).resolves.toBe('ok');
    await expect(b.run(refused)).rejects.toMatchObject({ code: 'ECONNREFUSED' });
  });

  it('hands the signal given to run to the call', async () => {
    const b = factory().create('p1');
    const ac = new AbortController();
    let seen: AbortSignal | undefined;
    await b.run(async (signal) => {
      seen = signal;
    }, ac.signal);
    expect(seen).toBe(ac.signal);
  });

  it('opens after failures past the volume threshold, then rejects fast without calling', async () => {
    const b = factory().create('p1');
    const seen = recorder(b);
    await trip(b);
    expect(b.state).toBe('open');
    expect(b.allowsCall).toBe(false);
    expect(seen).toEqual([['open', 'closed']]);
    let called = false;
    const err = await b
      .run(async () => {
        called = true;
      })
      .catch((e: unknown) => e);
    expect(called).toBe(false);
    expect(err).toBeInstanceOf(BreakerOpenError);
    expect(err).toMatchObject({ code: 'PEERLB_BREAKER_OPEN', peerId: 'p1' });
  });

  it('weighs failures against every finished call: successes keep the error rate down', async () => {
    const b = factory({ volumeThreshold: 4, errorThresholdPercentage: 50 }).create('p1');
    for (let i = 0; i < 6; i++) await b.run(ok);
    await trip(b, 4);
    // 4 failures of 10 calls: 40 %, below the threshold.
    expect(b.state).toBe('closed');
    await trip(b, 2);
    // 6 of 12: 50 %, not above it.
    expect(b.state).toBe('closed');
    await trip(b, 1);
    // 7 of 13: above it, and the breaker is open by the time the failing call rejects.
    expect(b.state).toBe('open');
  });

  it('settles a call that outlives the closed state as opossum would: its success closes a half-open breaker', async () => {
    const b = factory().create('p1');
    let release!: (v: string) => void;
    const slow = b.run(() => new Promise<string>((resolve) => (release = resolve)));
    await trip(b);
    await waitFor(() => b.state === 'halfOpen');
    release('late');
    await expect(slow).resolves.toBe('late');
    expect(b.state).toBe('closed');
  });

  it('settles a call that outlives the closed state as opossum would: its failure re-opens a half-open breaker', async () => {
    const b = factory().create('p1');
    let fail!: (e: Error) => void;
    const slow = b.run(() => new Promise<string>((_resolve, reject) => (fail = reject)));
    await trip(b);
    await waitFor(() => b.state === 'halfOpen');
    fail(Object.assign(new Error('reset'), { code: 'ECONNRESET' }));
    await expect(slow).rejects.toMatchObject({ code: 'ECONNRESET' });
    expect(b.state).toBe('open');
  });

  it('admits direct calls while closed and judges their reported outcomes as run() would', async () => {
    const b = factory({ volumeThreshold: 4, errorThresholdPercentage: 50 }).create('p1');
    const seen = recorder(b);
    expect(b.admitsDirectCall()).toBe(true);
    b.succeeded();
    b.succeeded();
    const reset = Object.assign(new Error('reset'), { code: 'ECONNRESET' });
    for (let i = 0; i < 2; i++) await b.failed(reset);
    // 2 of 4: not above 50 %.
    expect(b.state).toBe('closed');
    await b.failed(reset);
    // failed() resolves once opossum has decided: 3 of 5 opened it.
    expect(b.state).toBe('open');
    expect(b.admitsDirectCall()).toBe(false);
    expect(seen).toEqual([['open', 'closed']]);
    // A 404 is the peer answering: reported as a failure, it still counts for the peer.
    const c = factory({ volumeThreshold: 1 }).create('p2');
    await c.failed(Object.assign(new Error('404'), { statusCode: 404 }));
    expect(c.state).toBe('closed');
  });

  it("sends every call through opossum's fire() when its own timeoutMs is set", async () => {
    const b = factory({ timeoutMs: 30 }).create('p1');
    expect(b.admitsDirectCall()).toBe(false);
    const err = await b.run(() => new Promise(() => undefined)).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'ETIMEDOUT' });
  });

  it('does not open below the volume threshold', async () => {
    const b = factory({ volumeThreshold: 10 }).create('p1');
    await trip(b, 9);
    expect(b.state).toBe('closed');
  });

  it('goes half-open after resetTimeout, lets exactly one trial through, and closes when it succeeds', async () => {
    const b = factory().create('p1');
    const seen = recorder(b);
    await trip(b);
    await waitFor(() => b.state === 'halfOpen');
    expect(b.allowsCall).toBe(true);
    let release!: (v: string) => void;
    const trial = b.run(() => new Promise<string>((resolve) => (release = resolve)));
    // The single trial is taken: everything else is refused until it ends.
    expect(b.allowsCall).toBe(false);
    await expect(b.run(ok)).rejects.toBeInstanceOf(BreakerOpenError);
    release('fine');
    await expect(trial).resolves.toBe('fine');
    expect(b.state).toBe('closed');
    expect(seen).toEqual([
      ['open', 'closed'],
      ['halfOpen', 'open'],
      ['closed', 'halfOpen'],
    ]);
  });

  it('re-opens when the half-open trial fails', async () => {
    const b = factory().create('p1');
    await trip(b);
    await waitFor(() => b.state === 'halfOpen');
    await b.run(refused).catch(() => undefined);
    expect(b.state).toBe('open');
    await waitFor(() => b.state === 'halfOpen');
  });

  it('does not count 4xx (other than 429) or our own aborts against the peer', async () => {
    const b = factory().create('p1');
    const notFound = () => Promise.reject(Object.assign(new Error('404'), { statusCode: 404 }));
    for (let i = 0; i < 10; i++) await b.run(notFound).catch(() => undefined);
    const ac = new AbortController();
    ac.abort();
    for (let i = 0; i < 10; i++) {
      await b.run(() => Promise.reject(Object.assign(new Error('x'), { code: 'ECONNRESET' })), ac.signal).catch(
        () => undefined,
      );
      await b.run(() => Promise.reject(new DOMException('deadline', 'TimeoutError'))).catch(() => undefined);
    }
    expect(b.state).toBe('closed');
    const c = factory().create('p2');
    const tooMany = () => Promise.reject(Object.assign(new Error('429'), { statusCode: 429 }));
    for (let i = 0; i < 4; i++) await c.run(tooMany).catch(() => undefined);
    expect(c.state).toBe('open');
  });

  it('treats a half-open trial ended by our own abort as inconclusive: re-opens rather than closes', async () => {
    const b = factory().create('p1');
    await trip(b);
    await waitFor(() => b.state === 'halfOpen');
    const ac = new AbortController();
    ac.abort();
    await b.run(() => Promise.reject(ac.signal.reason), ac.signal).catch(() => undefined);
    expect(b.state).toBe('open');
    await waitFor(() => b.state === 'halfOpen');
    // A 404 from the trial proves the peer answers: that closes it.
    await b.run(() => Promise.reject(Object.assign(new Error('404'), { statusCode: 404 }))).catch(() => undefined);
    expect(b.state).toBe('closed');
  });

  it('keeps breakers of different peers apart', async () => {
    const f = factory();
    const a = f.create('a');
    const b = f.create('b');
    await trip(a);
    expect(a.state).toBe('open');
    expect(b.state).toBe('closed');
    await expect(b.run(ok)).resolves.toBe('ok');
  });

  it('makes opossum breakers on first call only; one rotation timer runs while any exists; shutdown refuses calls', async () => {
    const f = factory();
    expect(f.rotating).toBe(false);
    const a = f.create('a');
    const b = f.create('b');
    const idle = f.create('idle');
    // An idle peer costs no opossum breaker and no timer.
    expect(f.size).toBe(0);
    expect(f.rotating).toBe(false);
    expect(idle.state).toBe('closed');
    expect(idle.allowsCall).toBe(true);
    await a.run(ok);
    await b.run(ok);
    expect(f.rotating).toBe(true);
    expect(f.size).toBe(2);
    idle.shutdown();
    expect(idle.state).toBe('shutdown');
    a.shutdown();
    a.shutdown();
    expect(a.state).toBe('shutdown');
    await expect(a.run(ok)).rejects.toBeInstanceOf(ClosedError);
    expect(f.rotating).toBe(true);
    b.shutdown();
    expect(f.size).toBe(0);
    expect(f.rotating).toBe(false);
  });

  it('close() shuts every breaker down and refuses new ones', async () => {
    const f = factory();
    const a = f.create('a');
    await trip(a);
    f.close();
    expect(a.state).toBe('shutdown');
    expect(f.rotating).toBe(false);
    expect(() => f.create('b')).toThrow(ClosedError);
  });

  it('rotates buckets: failures older than the window are forgotten', async () => {
    const b = factory({ rollingCountTimeoutMs: 100, rollingCountBuckets: 2, volumeThreshold: 4 }).create('p1');
    await trip(b, 3);
    // Wait well past the window (two rotations of 50 ms): the 3 failures are gone.
    await new Promise((r) => setTimeout(r, 300));
    await trip(b, 1);
    expect(b.state).toBe('closed');
  });

  it('isolates a throwing state listener', async () => {
    const warnings: string[] = [];
    const b = factory({ logger: { warn: (m) => warnings.push(m) } }).create('p1');
    b.onStateChange(() => {
      throw new Error('boom');
    });
    const seen = recorder(b);
    await trip(b);
    expect(seen).toEqual([['open', 'closed']]);
    expect(warnings.some((w) => w.includes('boom'))).toBe(true);
  });

  it('an unsubscribed listener hears nothing', async () => {
    const b = factory().create('p1');
    const seen: BreakerState[] = [];
    const off = b.onStateChange((s) => seen.push(s));
    off();
    await trip(b);
    expect(seen).toEqual([]);
  });

  it('validates its options', () => {
    expect(() => new BreakerFactory({ errorThresholdPercentage: 0 })).toThrow(InvalidOptionsError);
    expect(() => new BreakerFactory({ errorThresholdPercentage: 101 })).toThrow(/breaker\.errorThresholdPercentage/);
    expect(() => new BreakerFactory({ resetTimeoutMs: 0 })).toThrow(/breaker\.resetTimeoutMs/);
    expect(() => new BreakerFactory({ volumeThreshold: -1 })).toThrow(/breaker\.volumeThreshold/);
    expect(() => new BreakerFactory({ rollingCountTimeoutMs: 5, rollingCountBuckets: 10 })).toThrow(
      /breaker\.rollingCountBuckets/,
    );
    expect(() => new BreakerFactory({ timeoutMs: -1 })).toThrow(/breaker\.timeoutMs/);
    expect(() => new BreakerFactory({ isPeerFault: true as never })).toThrow(/breaker\.isPeerFault/);
    expect(() => new BreakerFactory({}, 'client.breaker')).not.toThrow();
  });
});

describe('isPeerFault', () => {
  it('blames the peer for network failures, 5xx and 429, not for 4xx or our aborts', () => {
    expect(isPeerFault(Object.assign(new Error(), { code: 'ECONNREFUSED' }))).toBe(true);
    expect(isPeerFault(Object.assign(new Error(), { statusCode: 503 }))).toBe(true);
    expect(isPeerFault(Object.assign(new Error(), { statusCode: 429 }))).toBe(true);
    expect(isPeerFault(Object.assign(new Error(), { status: 404 }))).toBe(false);
    expect(isPeerFault(Object.assign(new Error(), { code: 'UND_ERR_ABORTED' }))).toBe(false);
    expect(isPeerFault(Object.assign(new Error(), { code: 'UND_ERR_CLOSED' }))).toBe(false);
    const ac = new AbortController();
    ac.abort();
    expect(isPeerFault(Object.assign(new Error(), { code: 'ECONNRESET' }), ac.signal)).toBe(false);
  });
});
