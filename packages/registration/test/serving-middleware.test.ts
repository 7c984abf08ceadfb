import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { InvalidOptionsError, MemoryRegistry, silentLogger } from '@peerlb/registry';
import { LOAD_REPORT_HEADER, createServing, startService, type ServingStep, type StartedService } from '../src/index.js';
import { httpRequest } from './support/http.js';

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function serve(listener: (req: IncomingMessage, res: ServerResponse) => void): Promise<string> {
  const server: Server = createServer(listener);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(() => new Promise((resolve) => server.close(resolve)));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

function recordingStep(name: string, seen: string[]): ServingStep {
  return {
    name,
    handle(req, res, next) {
      seen.push(name);
      return next(req, res);
    },
  };
}

const TEXT_REPORT = /^TEXT application_utilization=(0|1|0\.\d+), rps_fractional=\d+(\.\d+)?, named_metrics\.inflight=\d+$/;

describe('serving wrapper', () => {
  it('runs the load report first, then extra steps in order, then the handler', async () => {
    const seen: string[] = [];
    const serving = createServing({}, [recordingStep('a', seen), recordingStep('b', seen)]);
    cleanups.push(() => serving.close());
    expect(serving.steps.map((s) => s.name)).toEqual(['load-report', 'deadline', 'a', 'b']);
    const url = await serve(serving.wrap((_req, res) => { seen.push('handler'); res.end('ok'); }));
    const reply = await httpRequest(url);
    expect(reply.body).toBe('ok');
    expect(seen).toEqual(['a', 'b', 'handler']);
    expect(reply.headers[LOAD_REPORT_HEADER]).toMatch(TEXT_REPORT);
  });

  it('works as Express-style middleware and as a Fastify-style onRequest hook', async () => {
    const serving = createServing();
    cleanups.push(() => serving.close());
    const viaExpress = await serve((req, res) => serving.express(req, res, () => res.end('express')));
    const viaFastify = await serve((req, res) => serving.fastify({ raw: req }, { raw: res }, () => res.end('fastify')));
    const [e, f] = await Promise.all([httpRequest(viaExpress), httpRequest(viaFastify)]);
    expect(e.body).toBe('express');
    expect(f.body).toBe('fastify');
    expect(e.headers[LOAD_REPORT_HEADER]).toMatch(TEXT_REPORT);
    expect(f.headers[LOAD_REPORT_HEADER]).toMatch(TEXT_REPORT);
  });

  it('hands a step error to the Express next(err)', async () => {
    const boom: ServingStep = { name: 'boom', handle: () => { throw new Error('step failed'); } };
    const serving = createServing({ loadReport: false }, [boom]);
    const url = await serve((req, res) =>
      serving.express(req, res, (err) => res.end(err instanceof Error ? err.message : 'no error')),
    );
    expect((await httpRequest(url)).body).toBe('step failed');
  });

  it('names the field of a bad option', () => {
    expect(() => createServing({ loadReport: 'yes' as never })).toThrow(InvalidOptionsError);
    expect(() => createServing({ loadReport: { windowMs: -1 } })).toThrow(/loadReport\.windowMs/);
  });
});

/** startService options for a quiet 'orders' instance on a fresh MemoryRegistry. */
function instanceOptions() {
  const registry = new MemoryRegistry({ logger: silentLogger });
  cleanups.push(() => registry.close());
  return {
    service: 'orders',
    handler: (_req: IncomingMessage, res: ServerResponse) => res.end('ok'),
    handleSignals: false,
    logger: silentLogger,
    drainMs: 0,
    registry,
  };
}

describe('startService serving steps', () => {
  it('every answer but the health endpoint carries the load report; loadReport: false turns it off', async () => {
    const common = instanceOptions();
    const on: StartedService = await startService(common);
    cleanups.push(() => on.close());
    const off: StartedService = await startService({ ...common, serving: { loadReport: false } });
    cleanups.push(() => off.close());

    const answer = await httpRequest(`${on.url}/x`);
    expect(answer.headers[LOAD_REPORT_HEADER]).toMatch(TEXT_REPORT);
    expect(answer.headers[LOAD_REPORT_HEADER]).toContain('named_metrics.inflight=1');
    expect((await httpRequest(`${on.url}/health`)).headers[LOAD_REPORT_HEADER]).toBeUndefined();
    expect((await httpRequest(`${off.url}/x`)).headers[LOAD_REPORT_HEADER]).toBeUndefined();
  });
});

describe('StartedService.load()', () => {
  it('reads what the load report step measures; undefined when it is off', async () => {
    const common = instanceOptions();
    const on = await startService(common);
    cleanups.push(() => on.close());
    const off = await startService({ ...common, serving: { loadReport: false } });
    cleanups.push(() => off.close());
    await httpRequest(`${on.url}/x`);
    const load = on.load();
    expect(load).toBeDefined();
    expect(load!.utilization).toBeGreaterThanOrEqual(0);
    expect(load!.utilization).toBeLessThanOrEqual(1);
    // The answer's 'close' may land a moment after the caller has read it.
    for (let i = 0; i < 100 && on.load()!.inFlight !== 0; i++) await new Promise((r) => setTimeout(r, 20));
    expect(on.load()!.inFlight).toBe(0);
    expect(off.load()).toBeUndefined();
  });
});
