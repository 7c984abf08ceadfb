import { createServer, type Server } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { PortUnavailableError } from '../src/index.js';
import { listenOnPort } from '../src/port.js';
import { block, freeRange, type Blocker } from './support/ports.js';

const cleanup: Array<() => Promise<void>> = [];
afterEach(async () => {
  await Promise.all(cleanup.splice(0).map((c) => c()));
});

function server(): Server {
  const s = createServer();
  cleanup.push(() => new Promise<void>((r) => (s.listening ? s.close(() => r()) : r())));
  return s;
}

async function hold(port: number): Promise<Blocker> {
  const b = await block(port);
  cleanup.push(b.close);
  return b;
}

describe('listenOnPort', () => {
  it('ephemeral: port 0 and reports the port bound', async () => {
    const s = server();
    const port = await listenOnPort(s, { kind: 'ephemeral' }, { host: '127.0.0.1' });
    expect(port).toBe((s.address() as { port: number }).port);
    expect(port).toBeGreaterThan(0);
  });

  it('range: takes the one port left free', async () => {
    const range = await freeRange(4);
    for (const p of [range.start, range.start + 1, range.start + 3]) await hold(p);
    const port = await listenOnPort(server(), { kind: 'range', ...range }, { host: '127.0.0.1' });
    expect(port).toBe(range.start + 2);
  });

  it('range: nothing free is a PortUnavailableError naming the range', async () => {
    const range = await freeRange(2);
    await hold(range.start);
    await hold(range.end);
    const err = await listenOnPort(server(), { kind: 'range', ...range }, { host: '127.0.0.1' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PortUnavailableError);
    expect((err as PortUnavailableError).range).toEqual(range);
  });

  it('range: a port taken between search and listen (EADDRINUSE at listen) is answered by searching again', async () => {
    const range = await freeRange(3);
    const s = server();
    const realListen = s.listen.bind(s);
    const stolen: number[] = [];
    // Another process wins the race for the first port portfinder found.
    (s as unknown as { listen: (...args: unknown[]) => Server }).listen = (port: unknown, host: unknown) => {
      if (stolen.length === 0) {
        stolen.push(port as number);
        void hold(port as number).then(() => realListen(port as number, host as string));
        return s;
      }
      return realListen(port as number, host as string);
    };
    const port = await listenOnPort(s, { kind: 'range', ...range }, { host: '127.0.0.1' });
    expect(stolen).toHaveLength(1);
    expect(port).not.toBe(stolen[0]);
    expect(port).toBeGreaterThanOrEqual(range.start);
    expect(port).toBeLessThanOrEqual(range.end);
  });

  it('starts each search at a random port so parallel starters spread out', async () => {
    const range = await freeRange(8);
    const picks = new Set<number>();
    for (const r of [0, 0.3, 0.6, 0.99]) {
      const s = server();
      picks.add(await listenOnPort(s, { kind: 'range', ...range }, { host: '127.0.0.1', random: () => r }));
    }
    expect(picks.size).toBe(4);
  });

  it('fixed: a taken port is a PortUnavailableError naming the port', async () => {
    const range = await freeRange(1);
    await hold(range.start);
    const err = await listenOnPort(server(), { kind: 'fixed', port: range.start }, { host: '127.0.0.1' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PortUnavailableError);
    expect(err).toMatchObject({ port: range.start, code: 'PEERLB_PORT_UNAVAILABLE' });
  });

  it('an aborted signal stops before listening', async () => {
    const s = server();
    await expect(listenOnPort(s, { kind: 'ephemeral' }, { signal: AbortSignal.abort() })).rejects.toMatchObject({ code: 'PEERLB_ABORTED' });
    expect(s.listening).toBe(false);
  });
});
