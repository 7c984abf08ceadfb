// Issue 16: OpenTelemetry metrics and traces across two real processes. A caller process
// (createClient) and a service process (startService) each register the SDK's in-memory exporters
// before building anything, as an application would. The service is listed twice in the local
// registry, once at a dead port, so some calls are retried. What is checked: the HTTP semantic
// conventions' metric names, units and attributes, peerlb's own metrics, and the spans: the
// caller's root span -> peerlb call span -> attempt CLIENT spans -> the service's SERVER span
// (W3C trace context over the wire), the handler running inside it.
import { fork, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { LocalRegistry, silentLogger } from '@peerlb/registry';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const FIXTURE = fileURLToPath(new URL('../fixtures/otel-process.mjs', import.meta.url));
const SERVICE = 'otel-svc';
const CALLS = 8;
const SPAN_KIND = { INTERNAL: 0, SERVER: 1, CLIENT: 2 } as const;

interface SpanJson {
  name: string;
  kind: number;
  traceId: string;
  spanId: string;
  parentSpanId: string | undefined;
  scope: string;
  attributes: Record<string, unknown>;
  events: { name: string; attributes: Record<string, unknown> }[];
  status: { code: number };
}
interface MetricJson {
  scope: string;
  name: string;
  unit: string;
  dataPointType: number;
  points: { attributes: Record<string, unknown>; value: number | { count: number; sum: number } }[];
}
interface Dump {
  spans: SpanJson[];
  metrics: MetricJson[];
}

let dir: string;
let deadRegistry: LocalRegistry | undefined;
const children: ChildProcess[] = [];
let server: { id: string; url: string };
let client: ChildProcess;
let ran: { answers: { status?: number; peer?: string; body?: { traceId: string; spanId: string; traceparent: string }; error?: string }[] };
let callerDump: Dump;
let serviceDump: Dump;

function start(role: 'server' | 'client', env: NodeJS.ProcessEnv): ChildProcess {
  const child = fork(FIXTURE, [role], { env, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  children.push(child);
  return child;
}

/** The next message of `type` from `child` (fails if the child exits first). */
async function message<T>(child: ChildProcess, type: string, timeoutMs = 30_000): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no "${type}" message within ${timeoutMs} ms`)), timeoutMs);
    const onMessage = (m: { type: string }) => {
      if (m.type !== type) return;
      cleanup();
      resolve(m as T);
    };
    const onExit = (code: number | null) => {
      cleanup();
      reject(new Error(`process exited (${code}) before "${type}"`));
    };
    const cleanup = () => {
      clearTimeout(timer);
      child.off('message', onMessage);
      child.off('exit', onExit);
    };
    child.on('message', onMessage);
    child.once('exit', onExit);
  });
}

async function deadPort(): Promise<number> {
  const probe = createServer();
  probe.listen(0, '127.0.0.1');
  await once(probe, 'listening');
  const port = (probe.address() as { port: number }).port;
  probe.close();
  await once(probe, 'close');
  return port;
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'peerlb-otel-'));
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    PEERLB_REGISTRY_DIR: join(dir, 'registry'),
    OTEL_TEST_SERVICE: SERVICE,
    OTEL_TEST_BURST: String(CALLS),
  };
  delete env.CONSUL_HTTP_ADDR;
  const service = start('server', env);
  server = await message(service, 'ready');
  deadRegistry = new LocalRegistry({ dir: join(dir, 'registry'), logger: silentLogger });
  await deadRegistry.register(
    { id: `${SERVICE}-dead`, service: SERVICE, address: '127.0.0.1', port: await deadPort() },
    { ttlMs: 600_000 },
  );
  await deadRegistry.heartbeat(`${SERVICE}-dead`);
  client = start('client', env);
  await message(client, 'ready');
  // One call past the caller's burst: refused by the rate limit, nothing sent.
  client.send({ type: 'run', service: SERVICE, calls: CALLS + 1 });
  ran = await message(client, 'ran', 60_000);
  client.send({ type: 'dump' });
  callerDump = await message<Dump>(client, 'dump');
  service.send({ type: 'dump' });
  serviceDump = await message<Dump>(service, 'dump');
}, 120_000);

afterAll(async () => {
  for (const child of children) {
    if (child.exitCode !== null || child.signalCode !== null) continue;
    if (child.connected) child.send({ type: 'stop' });
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    await once(child, 'exit');
    clearTimeout(timer);
  }
  await deadRegistry?.deregister(`${SERVICE}-dead`).catch(() => {});
  await deadRegistry?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

const metric = (dump: Dump, name: string) => {
  const found = dump.metrics.find((m) => m.name === name);
  expect(found, `metric ${name} in ${dump.metrics.map((m) => m.name).join(', ')}`).toBeDefined();
  return found!;
};
const sum = (m: MetricJson, match: Record<string, unknown> = {}) =>
  m.points
    .filter((p) => Object.entries(match).every(([k, v]) => p.attributes[k] === v))
    .reduce((total, p) => total + (typeof p.value === 'number' ? p.value : p.value.count), 0);

describe('OpenTelemetry across a caller and a service process (issue 16)', () => {
  it('every call answered by the live instance, some after a retry from the dead one', () => {
    expect(ran.answers).toHaveLength(CALLS + 1);
    expect(ran.answers.at(-1)).toEqual({ error: 'PEERLB_RATE_LIMITED' });
    for (const answer of ran.answers.slice(0, CALLS)) {
      expect(answer.status).toBe(200);
      expect(answer.peer).toBe(server.id);
    }
  });

  it('caller metrics: http.client.request.duration (s, semconv attributes) and peerlb.client.*', () => {
    const duration = metric(callerDump, 'http.client.request.duration');
    expect(duration.scope).toBe('@peerlb/client');
    expect(duration.unit).toBe('s');
    const port = Number(new URL(server.url).port);
    const ok = duration.points.filter((p) => p.attributes['http.response.status_code'] === 200);
    expect(ok.map((p) => p.attributes)).toEqual([
      { 'http.request.method': 'GET', 'server.address': '127.0.0.1', 'server.port': port, 'http.response.status_code': 200 },
    ]);
    expect(sum(duration, { 'http.response.status_code': 200 })).toBe(CALLS);
    const refused = duration.points.filter((p) => p.attributes['error.type'] === 'ECONNREFUSED');
    expect(refused).toHaveLength(1);
    expect(refused[0]!.attributes['http.response.status_code']).toBeUndefined();
    const retries = sum(duration, { 'error.type': 'ECONNREFUSED' });
    expect(retries).toBeGreaterThan(0);

    const attempts = metric(callerDump, 'peerlb.client.attempts');
    expect(attempts.unit).toBe('{attempt}');
    expect(sum(attempts, { 'peerlb.service': SERVICE, 'peerlb.outcome': 'success' })).toBe(CALLS);
    expect(sum(attempts, { 'peerlb.service': SERVICE, 'peerlb.outcome': 'failure' })).toBe(retries);
    expect(sum(metric(callerDump, 'peerlb.client.retries'), { 'peerlb.service': SERVICE })).toBe(retries);
    const peers = metric(callerDump, 'peerlb.client.peers');
    expect(peers.unit).toBe('{peer}');
    const states = Object.fromEntries(peers.points.map((p) => [p.attributes['peerlb.peer.state'], p.value]));
    expect(Object.keys(states).sort()).toEqual(['breaker_open', 'ejected', 'healthy', 'max_concurrency', 'retry_after']);
    expect(Object.values(states).reduce((a, b) => Number(a) + Number(b), 0)).toBe(2);
    expect(sum(metric(callerDump, 'peerlb.client.discovery.stale'))).toBe(0);
    expect(sum(metric(callerDump, 'peerlb.client.registry.errors'))).toBe(0);
    expect(metric(callerDump, 'peerlb.client.ejections').unit).toBe('{ejection}');
    const limited = metric(callerDump, 'peerlb.client.rate_limited');
    expect(limited.unit).toBe('{call}');
    expect(limited.points).toEqual([{ attributes: { 'peerlb.service': SERVICE }, value: 1 }]);
  });

  it('service metrics: http.server.request.duration (s) per answer', () => {
    const duration = metric(serviceDump, 'http.server.request.duration');
    expect(duration.scope).toBe('@peerlb/registration');
    expect(duration.unit).toBe('s');
    expect(duration.points.map((p) => p.attributes)).toEqual([
      { 'http.request.method': 'GET', 'url.scheme': 'http', 'http.response.status_code': 200 },
    ]);
    expect(sum(duration)).toBe(CALLS);
  });

  it('spans: caller root -> call -> attempts -> server span, one trace per call, handler inside', () => {
    const root = callerDump.spans.find((s) => s.name === 'test-root')!;
    expect(root).toBeDefined();
    const calls = callerDump.spans.filter((s) => s.scope === '@peerlb/client' && s.kind === SPAN_KIND.INTERNAL);
    expect(calls).toHaveLength(CALLS);
    const serverSpans = serviceDump.spans.filter((s) => s.kind === SPAN_KIND.SERVER);
    expect(serverSpans).toHaveLength(CALLS);
    let retried = 0;
    for (const call of calls) {
      expect(call.name).toBe(`peerlb ${SERVICE}`);
      expect(call.traceId).toBe(root.traceId);
      expect(call.parentSpanId).toBe(root.spanId);
      expect(call.attributes).toMatchObject({ 'peerlb.service': SERVICE, 'peerlb.peer.id': server.id, 'http.response.status_code': 200 });
      const attempts = callerDump.spans.filter((s) => s.parentSpanId === call.spanId);
      expect(attempts.length).toBe(call.attributes['peerlb.attempts']);
      for (const attempt of attempts) {
        expect(attempt.kind).toBe(SPAN_KIND.CLIENT);
        expect(attempt.name).toBe('GET');
        expect(attempt.attributes['url.full']).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/call\/\d+$/);
      }
      const good = attempts.find((a) => a.attributes['http.response.status_code'] === 200)!;
      expect(good.attributes['peerlb.peer.id']).toBe(server.id);
      // The service's span is the child of exactly this attempt, in the caller's trace.
      const serverSpan = serverSpans.find((s) => s.parentSpanId === good.spanId)!;
      expect(serverSpan, 'a server span whose parent is the answering attempt').toBeDefined();
      expect(serverSpan.traceId).toBe(root.traceId);
      expect(serverSpan.attributes).toMatchObject({ 'http.request.method': 'GET', 'http.response.status_code': 200 });
      if (attempts.length > 1) {
        retried++;
        const failed = attempts.find((a) => a !== good)!;
        expect(failed.attributes).toMatchObject({ 'error.type': 'ECONNREFUSED', 'peerlb.peer.id': `${SERVICE}-dead` });
        expect(failed.status.code).toBe(2); // ERROR
        expect(good.attributes['http.request.resend_count']).toBe(1);
        expect(call.events.map((e) => e.name)).toEqual(['peerlb.retry']);
        expect(call.events[0]!.attributes).toMatchObject({ 'peerlb.attempt': 1, 'error.type': 'ECONNREFUSED' });
      }
    }
    expect(retried).toBeGreaterThan(0);
    // The handler ran inside the server span, and saw a W3C traceparent naming its parent.
    for (const answer of ran.answers.slice(0, CALLS)) {
      const serverSpan = serverSpans.find((s) => s.spanId === answer.body!.spanId)!;
      expect(serverSpan).toBeDefined();
      expect(answer.body!.traceparent).toBe(`00-${serverSpan.traceId}-${serverSpan.parentSpanId}-01`);
    }
  });
});
