import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { InvalidOptionsError } from '@peerlb/registry';
import { DEADLINE_EXPIRED_CODE, createServing, currentDeadline, deadlineStep, type Serving } from '../src/index.js';
import { httpRequest } from './support/http.js';

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function serve(serving: Serving, handler: (req: IncomingMessage, res: ServerResponse) => unknown): Promise<string> {
  const server: Server = createServer(serving.wrap(handler));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(() => {
    server.closeAllConnections();
    return new Promise((resolve) => server.close(resolve));
  });
  cleanups.push(() => serving.close());
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

/** Sends raw request bytes (headers no client library would write) and returns the raw answer. */
function rawRequest(url: string, head: string): Promise<string> {
  const { port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port: Number(port) });
    let answer = '';
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => (answer += chunk));
    socket.on('end', () => resolve(answer));
    socket.on('error', reject);
    socket.setTimeout(5_000, () => socket.destroy(new Error('no answer')));
    socket.write(`${head}\r\nconnection: close\r\n\r\n`, 'latin1');
  });
}

/** A handler that reports the budget it sees, counting its runs. */
function budgetEcho(runs: { n: number }) {
  return (_req: IncomingMessage, res: ServerResponse) => {
    runs.n++;
    const deadline = currentDeadline();
    res.end(JSON.stringify({ left: deadline === undefined ? null : deadline.timeLeftMs(), aborted: deadline?.signal.aborted ?? null }));
  };
}

describe('serving deadline step', () => {
  it('gives the handler the caller budget through currentDeadline()', async () => {
    const runs = { n: 0 };
    const serving = createServing({ loadReport: false });
    const url = await serve(serving, budgetEcho(runs));
    const reply = await httpRequest(url, { headers: { 'x-peerlb-timeout': '850m' } });
    const seen = JSON.parse(reply.body) as { left: number; aborted: boolean };
    expect(reply.status).toBe(200);
    expect(seen.left).toBeGreaterThan(0);
    expect(seen.left).toBeLessThanOrEqual(850);
    expect(seen.aborted).toBe(false);
    const none = JSON.parse((await httpRequest(url)).body) as { left: null };
    expect(none.left).toBeNull();
    expect(serving.stats().deadline).toEqual({ withDeadline: 1, expired: 0, cancelled: 0, late: 0 });
  });

  it('answers a request with no time left 504 with the peerlb code, without running the handler, and counts it', async () => {
    const runs = { n: 0 };
    const serving = createServing();
    const url = await serve(serving, budgetEcho(runs));
    const reply = await httpRequest(url, { headers: { 'x-peerlb-timeout': '0m' } });
    expect(reply.status).toBe(504);
    expect(JSON.parse(reply.body)).toEqual({ error: 'deadline exceeded', code: DEADLINE_EXPIRED_CODE });
    expect(runs.n).toBe(0);
    expect(serving.stats().deadline?.expired).toBe(1);
  });

  it('ignores or clamps hostile header values and keeps serving', async () => {
    const runs = { n: 0 };
    const serving = createServing({ loadReport: false, deadline: { maxMs: 2_000 } });
    const url = await serve(serving, budgetEcho(runs));
    const cases: Array<[string, 'none' | number]> = [
      ['x-peerlb-timeout: -5m', 'none'],
      ['x-peerlb-timeout: garbage', 'none'],
      ['x-peerlb-timeout: 1.5S', 'none'],
      ['x-peerlb-timeout: 123456789m', 'none'],
      ['x-peerlb-timeout: 99999999H', 2_000],
      ['x-peerlb-timeout: 5S\r\nx-peerlb-timeout: 300m', 300],
      [Array.from({ length: 50 }, () => 'x-peerlb-timeout: 1S').join('\r\n'), 'none'],
      [`x-peerlb-timeout: ${'9'.repeat(8_000)}m`, 'none'],
      ['x-peerlb-timeout:', 'none'],
    ];
    for (const [header, expected] of cases) {
      const answer = await rawRequest(url, `GET / HTTP/1.1\r\nhost: x\r\n${header}`);
      expect(answer.startsWith('HTTP/1.1 200'), header.slice(0, 60)).toBe(true);
      const left = (JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4)) as { left: number | null }).left;
      if (expected === 'none') expect(left, header.slice(0, 60)).toBeNull();
      else {
        expect(left).toBeGreaterThan(expected - 500);
        expect(left).toBeLessThanOrEqual(expected);
      }
    }
    expect(runs.n).toBe(cases.length);
  });

  it('cancels the budget when the caller disconnects: the handler signal aborts and the request counts as cancelled', async () => {
    const serving = createServing({ loadReport: false });
    let aborted: Promise<unknown> | undefined;
    const url = await serve(serving, () => {
      const signal = currentDeadline()!.signal;
      aborted = new Promise((resolve) => signal.addEventListener('abort', () => resolve(signal.reason), { once: true }));
      // Never answers: the caller gives up first.
    });
    const req = request(url, { headers: { 'x-peerlb-timeout': '10S' }, agent: false });
    req.on('error', () => {});
    req.end();
    while (aborted === undefined) await sleep(5);
    req.destroy();
    const reason = await aborted;
    expect((reason as DOMException).name).toBe('AbortError');
    await expect.poll(() => serving.stats().deadline?.cancelled).toBe(1);
  });

  it('aborts the handler signal when the budget runs out and counts an answer finished after it as late', async () => {
    const serving = createServing({ loadReport: false });
    const url = await serve(serving, async (_req, res) => {
      const deadline = currentDeadline()!;
      await new Promise((resolve) => deadline.signal.addEventListener('abort', resolve, { once: true }));
      await sleep(5);
      res.end(String(deadline.timeLeftMs()));
    });
    const reply = await httpRequest(url, { headers: { 'x-peerlb-timeout': '60m' } });
    expect(reply.body).toBe('0');
    await expect.poll(() => serving.stats().deadline?.late).toBe(1);
  });

  it('gives requests without the header the defaultMs budget (a gateway)', async () => {
    const runs = { n: 0 };
    const serving = createServing({ loadReport: false, deadline: { defaultMs: 800 } });
    const url = await serve(serving, budgetEcho(runs));
    const seen = JSON.parse((await httpRequest(url)).body) as { left: number };
    expect(seen.left).toBeGreaterThan(0);
    expect(seen.left).toBeLessThanOrEqual(800);
  });

  it('runs the Express and Fastify continuations inside the deadline', async () => {
    const serving = createServing({ loadReport: false });
    const server = createServer((req, res) => {
      const reply = () => res.end(String(currentDeadline() !== undefined));
      if (req.url === '/express') serving.express(req, res, reply);
      else serving.fastify({ raw: req }, { raw: res }, reply);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    cleanups.push(() => new Promise((resolve) => server.close(resolve)));
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const headers = { 'x-peerlb-timeout': '1S' };
    expect((await httpRequest(`${base}/express`, { headers })).body).toBe('true');
    expect((await httpRequest(`${base}/fastify`, { headers })).body).toBe('true');
  });

  it('can be turned off, and refuses bad options naming the field', () => {
    expect(createServing({ deadline: false }).steps.map((s) => s.name)).not.toContain('deadline');
    expect(() => createServing({ deadline: 5 as unknown as boolean })).toThrow(InvalidOptionsError);
    expect(() => deadlineStep({ maxMs: -1 })).toThrow(/serving\.deadline\.maxMs/);
    expect(() => deadlineStep({ defaultMs: Number.NaN })).toThrow(/serving\.deadline\.defaultMs/);
  });
});
