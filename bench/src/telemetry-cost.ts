/**
 * What OpenTelemetry costs the client per request (issue 16), in one process, on the in-process
 * transport (no sockets: the client's own work is all there is to measure):
 *
 * - `off`: `createClient({ telemetry: false })`;
 * - `no SDK`: the default, with `@opentelemetry/api` installed and no provider registered (what
 *   an application without OpenTelemetry runs): must be within noise of `off`;
 * - `SDK`: a MeterProvider (never collected) and a tracer provider sampling every span into a
 *   no-op exporter, registered before the client is built: the price of turning it on.
 *
 * The three clients exist side by side and take turns in slices, so machine noise hits them
 * alike; ratios are medians of per-round ratios. Usage (after `tsc -p bench`):
 *   node bench/dist/bench/src/telemetry-cost.js [--rounds 15] [--requests 4000]
 */
import { metrics, trace } from '@opentelemetry/api';
import { MeterProvider } from '@opentelemetry/sdk-metrics';
import { BasicTracerProvider, SimpleSpanProcessor, type SpanExporter } from '@opentelemetry/sdk-trace-base';
import { createClient, type Client } from '@peerlb/client';
import { MemoryRegistry, silentLogger } from '@peerlb/registry';
import { mockTransport } from './mock-transport.js';
import { median } from './stats.js';

const SERVICE = 'bench-otel';
const CONCURRENCY = 8;

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i < 0 ? fallback : Number(process.argv[i + 1]);
}

function client(telemetry?: false): Client {
  const registry = new MemoryRegistry({
    logger: silentLogger,
    instances: [0, 1, 2].map((i) => ({ id: `otel-${i}`, service: SERVICE, address: '127.0.0.1', port: 9100 + i, tags: [], meta: {} })),
  });
  return createClient({
    registry,
    closeRegistry: true,
    transportFactory: mockTransport,
    logger: silentLogger,
    ...(telemetry === false ? { telemetry } : {}),
  });
}

/** CPU microseconds per request over `requests` calls, `CONCURRENCY` at a time. */
async function slice(c: Client, requests: number): Promise<number> {
  let left = requests;
  const worker = async () => {
    while (left-- > 0) {
      const res = await c.request({ service: SERVICE, path: '/' });
      await res.body.text();
    }
  };
  const cpu0 = process.cpuUsage();
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  const cpu = process.cpuUsage(cpu0);
  return (cpu.user + cpu.system) / requests;
}

const noopExporter: SpanExporter = {
  export: (_spans, done) => done({ code: 0 }),
  shutdown: async () => {},
};

async function main(): Promise<void> {
  const rounds = arg('rounds', 15);
  const requests = arg('requests', 4000);
  // Built before any provider is registered: these two never see an SDK.
  const off = client(false);
  const noSdk = client();
  const meterProvider = new MeterProvider();
  const tracerProvider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(noopExporter)] });
  metrics.setGlobalMeterProvider(meterProvider);
  trace.setGlobalTracerProvider(tracerProvider);
  const sdk = client();
  const modes: [string, Client][] = [
    ['off', off],
    ['no SDK', noSdk],
    ['SDK', sdk],
  ];
  for (const [, c] of modes) await slice(c, 500); // warm-up: pools, JIT
  const cpu = new Map<string, number[]>(modes.map(([name]) => [name, []]));
  for (let r = 0; r < rounds; r++) {
    // Rotate the order each round so no mode always runs right after another.
    for (let k = 0; k < modes.length; k++) {
      const [name, c] = modes[(r + k) % modes.length]!;
      cpu.get(name)!.push(await slice(c, requests));
    }
  }
  const offRuns = cpu.get('off')!;
  const ratio = (name: string) => median(cpu.get(name)!.map((v, i) => v / offRuns[i]!));
  console.log(`telemetry cost: ${rounds} rounds x ${requests} requests per mode, concurrency ${CONCURRENCY}, in-process transport`);
  console.log('| mode | client CPU per request (median) | vs off (median of per-round ratios) |');
  console.log('| --- | --- | --- |');
  for (const [name] of modes) {
    console.log(`| ${name} | ${median(cpu.get(name)!).toFixed(2)} us | ${ratio(name).toFixed(3)}x |`);
  }
  for (const [, c] of modes) await c.close();
  await meterProvider.shutdown();
  await tracerProvider.shutdown();
}

await main();
