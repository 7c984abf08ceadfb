// Issue 16: the serving wrapper's OpenTelemetry step. Absent when nothing is registered (no work
// per request); with providers: a SERVER span continuing the caller's W3C trace context, the
// handler inside it, and http.server.request.duration.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  AggregationTemporality,
  InMemoryMetricExporter,
  MeterProvider,
  PeriodicExportingMetricReader,
} from '@opentelemetry/sdk-metrics';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { afterEach, describe, expect, it } from 'vitest';
import { createServing, type Serving } from '../src/index.js';
import { httpRequest } from './support/http.js';

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function serve(serving: Serving, handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<string> {
  const server = createServer(serving.wrap(handler));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(() => new Promise((resolve) => server.close(resolve)), () => serving.close());
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

function providers() {
  const spans = new InMemorySpanExporter();
  const tracerProvider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(spans)] });
  const exporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE);
  const reader = new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: 3_600_000 });
  const meterProvider = new MeterProvider({ readers: [reader] });
  cleanups.push(() => meterProvider.shutdown(), () => tracerProvider.shutdown());
  const durations = async () => {
    await reader.forceFlush();
    const metrics = exporter.getMetrics().at(-1)?.scopeMetrics.flatMap((s) => s.metrics) ?? [];
    return metrics.find((m) => m.descriptor.name === 'http.server.request.duration');
  };
  return { spans, tracerProvider, meterProvider, durations };
}

const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736';
const PARENT_ID = '00f067aa0ba902b7';

describe('serving telemetry step', () => {
  it('is not in the chain when no OpenTelemetry provider is registered', () => {
    const serving = createServing();
    cleanups.push(() => serving.close());
    expect(serving.steps.map((s) => s.name)).toEqual(['load-report', 'deadline']);
  });

  it('continues the W3C trace of the caller in a SERVER span, the handler inside it', async () => {
    const otel = providers();
    const serving = createServing({ telemetry: { tracerProvider: otel.tracerProvider, meterProvider: otel.meterProvider } });
    expect(serving.steps.map((s) => s.name)).toEqual(['load-report', 'telemetry', 'deadline']);
    // (The handler running inside the span needs a context manager: test/otel checks it.)
    const url = await serve(serving, (_req, res) => {
      res.statusCode = 503;
      res.end('busy');
    });
    const reply = await httpRequest(`${url}/orders/42?token=secret`, {
      headers: { traceparent: `00-${TRACE_ID}-${PARENT_ID}-01`, 'user-agent': 'peerlb-test' },
    });
    expect(reply.status).toBe(503);
    const [span] = otel.spans.getFinishedSpans();
    expect(span).toBeDefined();
    expect(span!.kind).toBe(1); // SERVER
    expect(span!.name).toBe('GET');
    expect(span!.spanContext().traceId).toBe(TRACE_ID);
    expect(span!.parentSpanContext?.spanId).toBe(PARENT_ID);
    expect(span!.attributes).toMatchObject({
      'http.request.method': 'GET',
      'url.path': '/orders/42',
      'url.scheme': 'http',
      'http.response.status_code': 503,
      'error.type': '503',
      'user_agent.original': 'peerlb-test',
    });
    expect(span!.status.code).toBe(2); // ERROR

    const duration = await otel.durations();
    expect(duration?.descriptor.unit).toBe('s');
    expect(duration?.dataPoints.map((p) => p.attributes)).toEqual([
      { 'http.request.method': 'GET', 'url.scheme': 'http', 'http.response.status_code': 503, 'error.type': '503' },
    ]);
  });

  it('a request without trace context starts a new trace; a malformed traceparent is ignored', async () => {
    const otel = providers();
    const serving = createServing({ telemetry: { tracerProvider: otel.tracerProvider } });
    const url = await serve(serving, (_req, res) => res.end('ok'));
    await httpRequest(url);
    await httpRequest(url, { headers: { traceparent: `00-${'0'.repeat(32)}-${PARENT_ID}-01` } });
    await httpRequest(url, { headers: { traceparent: 'garbage' } });
    const spans = otel.spans.getFinishedSpans();
    expect(spans).toHaveLength(3);
    for (const span of spans) {
      expect(span.parentSpanContext).toBeUndefined();
      expect(span.attributes['http.response.status_code']).toBe(200);
      expect(span.attributes['error.type']).toBeUndefined();
    }
  });

  it('validates the option, naming the field', () => {
    expect(() => createServing({ telemetry: 'yes' as never })).toThrow(expect.objectContaining({ field: 'serving.telemetry' }));
    expect(() => createServing({ telemetry: { meterProvider: {} as never } })).toThrow(
      expect.objectContaining({ field: 'serving.telemetry.meterProvider' }),
    );
    const off = createServing({ telemetry: false });
    cleanups.push(() => off.close());
    expect(off.steps.map((s) => s.name)).toEqual(['load-report', 'deadline']);
  });
});
