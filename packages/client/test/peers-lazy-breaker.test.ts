import { afterEach, describe, expect, it } from 'vitest';
import type { ServiceInstance } from '@peerlb/registry';
import { Peer } from '../src/peers/peer.js';
import { leastRequestsLoad } from '../src/balancer/index.js';
import { BreakerFactory, type BreakerState } from '../src/resilience/index.js';
import { resolvePoolOptions, undiciPoolFactory } from '../src/transport/index.js';

const instance = (id: string): ServiceInstance => ({ id, service: 's', address: '127.0.0.1', port: 1, tags: [], meta: {} });
const factories: BreakerFactory[] = [];
afterEach(() => {
  for (const f of factories.splice(0)) f.close();
});

function peerWithBreakers(id: string, seen: Array<[string, BreakerState]> = []) {
  const factory = new BreakerFactory({ volumeThreshold: 1, resetTimeoutMs: 60_000 });
  factories.push(factory);
  const breakers = { factory, onState: (peer: Peer, state: BreakerState) => seen.push([peer.id, state]) };
  const peer = new Peer(instance(id), leastRequestsLoad().create(), breakers, undiciPoolFactory, resolvePoolOptions({}));
  return { peer, factory };
}

describe('a peer breaker, made on the first call', () => {
  it('costs nothing until the first call and reads as closed meanwhile', () => {
    const { peer, factory } = peerWithBreakers('a');
    expect(peer.breaker).toBeUndefined();
    expect(peer.breakerState).toBe('closed');
    expect(factory.size).toBe(0);
    const breaker = peer.breakerForCall();
    expect(breaker).toBeDefined();
    expect(peer.breakerForCall()).toBe(breaker);
    expect(breaker!.admitsDirectCall()).toBe(true);
    expect(factory.size).toBe(1);
  });

  it("reports the made breaker's transitions with the peer", async () => {
    const seen: Array<[string, BreakerState]> = [];
    const { peer } = peerWithBreakers('b', seen);
    const breaker = peer.breakerForCall()!;
    expect(breaker.admitsDirectCall()).toBe(true);
    await breaker.failed(Object.assign(new Error('refused'), { code: 'ECONNREFUSED' }));
    expect(peer.breakerState).toBe('open');
    expect(seen).toEqual([['b', 'open']]);
  });

  it('is never made for a peer that left, nor after the client closed its breakers', () => {
    const { peer, factory } = peerWithBreakers('c');
    peer.retired = true;
    expect(peer.breakerForCall()).toBeUndefined();
    expect(peer.breakerState).toBe('shutdown');
    const other = peerWithBreakers('d');
    other.factory.close();
    expect(other.peer.breakerForCall()).toBeUndefined();
    expect(factory.size + other.factory.size).toBe(0);
  });

  it("reads 'disabled' with breaker: false", () => {
    const peer = new Peer(instance('e'), leastRequestsLoad().create(), undefined, undiciPoolFactory, resolvePoolOptions({}));
    expect(peer.breakerForCall()).toBeUndefined();
    expect(peer.breakerState).toBe('disabled');
  });
});
