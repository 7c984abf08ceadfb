// Issue 16: the client's OpenTelemetry, in one process with providers passed explicitly (the
// cross-process trace is in test/otel). Off without a provider; a failed call's span says why;
// the dispatcher door is traced like request(); a body cut by the deadline fails the call's span.
import {
  AggregationTemporality,
  InMemoryMetricExporter,
  MeterProvider,
  PeriodicExportingMetricReader,
} from '@opentelemetry/sdk-metrics';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { request as undiciRequest } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { createClient, roundRobin, type Client, type ClientOptions } from '../src/index.js';
import { deadPort, startPeer, TestRegistry, type Handler } from './support/client-testkit.js';

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

function providers() {
  const spans = new InMemorySpanExporter();
  const tracerProvider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(spans)] });
  const exporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE);
  const reader = new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: 3_600_000 });
  const meterProvider = new MeterProvider({ readers: [reader] });
  cleanups.push(() => meterProvider.shutdown(), () => tracerProvider.shutdown());
  const metric = async (name: string) => {
    await reader.forceFlush();
    return exporter
      .getMetrics()
      .at(-1)
      ?.scopeMetrics.flatMap((s) => s.metrics)
      .find((m) => m.descriptor.name === name);
  };
  return { spans, tracerProvider, meterProvider, metric };
}

async function setUp(handlers: Handler[], options: Partial<ClientOptions>, deadPeers = 0): Promise<Client> {
  const registry = new TestRegistry();
  cleanups.push(() => registry.close());
  for (const [i, handler] of handlers.entries()) {
    const peer = await startPeer(`api-${i}`, handler);
    cleanups.push(() => peer.close());
    await registry.add('api', peer);
  }
  for (let i = 0; i < deadPeers; i++) await registry.add('api', { id: `dead-${i}`, port: await deadPort() });
  const client = createClient({ registry, balancer: roundRobin(), ...options });
  cleanups.push(() => client.close());
  return client;
}

const ok: Handler = (_req, res) => res.end('ok');

describe('client telemetry', () => {
  it('validates the option, naming the field; off by default when nothing is registered', async () => {
    const registry = new TestRegistry();
    cleanups.push(() => registry.close());
    expect(() => createClient({ registry, telemetry: 1 as never })).toThrow(expect.objectContaining({ field: 'telemetry' }));
    expect(() => createClient({ registry, telemetry: { tracerProvider: {} as never } })).toThrow(
      expect.objectContaining({ field: 'telemetry.tracerProvider' }),
    );
    // Nothing registered globally in this process: the request sends no trace context.
    let traceparent: unknown = 'unset';
    const client = await setUp([(req, res) => ((traceparent = req.headers.traceparent), res.end('ok'))], {});
    await (await client.request({ service: 'api', path: '/' })).body.dump();
    expect(traceparent).toBeUndefined();
  });

  it('a call that fails ends its span with the error; failed attempts are spans and metrics too', async () => {
    const otel = providers();
    const client = await setUp([], { telemetry: { tracerProvider: otel.tracerProvider, meterProvider: otel.meterProvider } }, 2);
    await expect(client.request({ service: 'api', path: '/x', method: 'POST', body: 'b' })).rejects.toMatchObject({
      code: 'PEERLB_UPSTREAM',
    });
    const spans = otel.spans.getFinishedSpans();
    const call = spans.find((s) => s.name === 'peerlb api')!;
    expect(call.attributes).toMatchObject({ 'error.type': 'PEERLB_UPSTREAM', 'peerlb.attempts': 2, 'http.request.method': 'POST' });
    expect(call.status.code).toBe(2);
    const attempts = spans.filter((s) => s.parentSpanContext?.spanId === call.spanContext().spanId);
    expect(attempts.map((a) => [a.name, a.attributes['error.type']])).toEqual([
      ['POST', 'ECONNREFUSED'],
      ['POST', 'ECONNREFUSED'],
    ]);
    const outcomes = await otel.metric('peerlb.client.attempts');
    expect(outcomes?.dataPoints.map((p) => [p.attributes['peerlb.outcome'], p.value])).toEqual([['failure', 2]]);
  });

  it('the dispatcher door: spans per call and attempt, trace context sent to the peer', async () => {
    const otel = providers();
    let traceparent: string | undefined;
    const client = await setUp(
      [
        (req, res) => {
          traceparent = req.headers.traceparent as string;
          res.end('ok');
        },
      ],
      { telemetry: { tracerProvider: otel.tracerProvider } },
    );
    const res = await undiciRequest('http://api/v1/x?q=1', { dispatcher: client.dispatcher() });
    expect(res.statusCode).toBe(200);
    await res.body.dump();
    const spans = otel.spans.getFinishedSpans();
    const call = spans.find((s) => s.name === 'peerlb api')!;
    const attempt = spans.find((s) => s.parentSpanContext?.spanId === call.spanContext().spanId)!;
    expect(attempt.attributes['url.full']).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/v1\/x$/);
    expect(traceparent).toBe(`00-${attempt.spanContext().traceId}-${attempt.spanContext().spanId}-01`);
    expect(call.attributes).toMatchObject({ 'http.response.status_code': 200, 'peerlb.peer.id': 'api-0' });
  });

  it("an answer whose body the deadline cuts fails the call's span", async () => {
    const otel = providers();
    const client = await setUp(
      [
        (_req, res) => {
          res.writeHead(200);
          res.write('partial'); // and never ends
        },
      ],
      { telemetry: { tracerProvider: otel.tracerProvider }, outlier: false },
    );
    const res = await client.request({ service: 'api', path: '/', timeoutMs: 300 });
    await expect(res.body.text()).rejects.toMatchObject({ code: 'PEERLB_DEADLINE' });
    const call = otel.spans.getFinishedSpans().find((s) => s.name === 'peerlb api')!;
    expect(call.attributes).toMatchObject({ 'http.response.status_code': 200, 'error.type': 'PEERLB_DEADLINE' });
    expect(call.status.code).toBe(2);
  });

  it('a call refused by the rate limit is counted, and sends nothing', async () => {
    const otel = providers();
    const client = await setUp([ok], { telemetry: { meterProvider: otel.meterProvider }, rateLimit: { ratePerSec: 0.001, burst: 1 } });
    await (await client.request({ service: 'api', path: '/' })).body.dump();
    await expect(client.request({ service: 'api', path: '/' })).rejects.toMatchObject({ code: 'PEERLB_RATE_LIMITED' });
    const limited = await otel.metric('peerlb.client.rate_limited');
    expect(limited?.dataPoints.map((p) => [p.attributes, p.value])).toEqual([[{ 'peerlb.service': 'api' }, 1]]);
  });
});
