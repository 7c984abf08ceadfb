import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { drain, InFlight } from '../src/drain.js';

let server: Server | undefined;
afterEach(async () => {
  server?.closeAllConnections();
  await new Promise((r) => server?.close(r) ?? r(undefined));
  server = undefined;
});

/** A server whose responses wait until released; `inFlight` counts them. */
async function holdingServer(inFlight: InFlight): Promise<{ port: number; release: () => void }> {
  const held: Array<() => void> = [];
  server = createServer((_req, res) => {
    inFlight.track(res);
    held.push(() => res.end('ok'));
  });
  await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r));
  return { port: (server.address() as AddressInfo).port, release: () => held.splice(0).forEach((f) => f()) };
}

function get(port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    request({ host: '127.0.0.1', port, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    })
      .on('error', reject)
      .end();
  });
}

describe('drain', () => {
  it('ends after the propagation window when the deregistration was confirmed and nothing is in flight', async () => {
    const started = performance.now();
    expect(await drain({ drainMs: 5_000, propagationMs: 100, deregistered: true, inFlight: new InFlight() })).toBe(true);
    const took = performance.now() - started;
    expect(took).toBeGreaterThanOrEqual(95);
    expect(took).toBeLessThan(3_000);
  });

  it('serves the full drain when the registry did not confirm the deregistration', async () => {
    const started = performance.now();
    expect(await drain({ drainMs: 400, propagationMs: 50, deregistered: false, inFlight: new InFlight() })).toBe(false);
    expect(performance.now() - started).toBeGreaterThanOrEqual(395);
  });

  it('waits for the responses in flight, then ends; never longer than drainMs', async () => {
    const inFlight = new InFlight();
    const { port, release } = await holdingServer(inFlight);
    const answer = get(port);
    while (inFlight.size === 0) await new Promise((r) => setTimeout(r, 5));
    const ended = drain({ drainMs: 10_000, propagationMs: 50, deregistered: true, inFlight });
    let done = false;
    void ended.then(() => (done = true));
    await new Promise((r) => setTimeout(r, 300));
    expect(done).toBe(false);
    release();
    expect(await answer).toBe(200);
    expect(await ended).toBe(true);
    expect(inFlight.size).toBe(0);

    const stuck = get(port);
    while (inFlight.size === 0) await new Promise((r) => setTimeout(r, 5));
    expect(await drain({ drainMs: 300, propagationMs: 50, deregistered: true, inFlight })).toBe(false);
    release();
    await stuck;
  });
});
