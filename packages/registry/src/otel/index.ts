/**
 * OpenTelemetry for the peerlb packages, as an optional peer dependency: `@opentelemetry/api` is
 * loaded only when a client or a serving wrapper is built, and only used when the application
 * installed it and registered (or passed) a tracer or meter provider. Without that, peerlb adds
 * nothing per request. Internal to peerlb (`@peerlb/registry/otel`); the public option type is
 * `TelemetryOptions` of `@peerlb/registry`.
 */
import { createRequire } from 'node:module';
import type * as Otel from '@opentelemetry/api';
import { InvalidOptionsError } from '../errors.js';
import type { TelemetryOptions } from '../telemetry-options.js';

export type OtelApi = typeof Otel;
export type { Otel };

let loaded: OtelApi | null | undefined;

/** `@opentelemetry/api` if the application can resolve it, else undefined. Tried once. */
export function loadOtelApi(): OtelApi | undefined {
  if (loaded === undefined) {
    try {
      loaded = createRequire(import.meta.url)('@opentelemetry/api') as OtelApi;
    } catch {
      loaded = null;
    }
  }
  return loaded ?? undefined;
}

const versions = new Map<string, string>();

/**
 * The version in the package.json two folders above `moduleUrl` (a module's `import.meta.url` in
 * `src/x/` or `dist/x/`), for an instrumentation scope. Read when first needed, never on import.
 */
export function scopeVersion(moduleUrl: string): string {
  let version = versions.get(moduleUrl);
  if (version === undefined) {
    version = (createRequire(moduleUrl)('../../package.json') as { version: string }).version;
    versions.set(moduleUrl, version);
  }
  return version;
}

/** What a package instruments with: undefined members are off (no provider registered). */
export interface Instrumentation {
  readonly api: OtelApi;
  readonly tracer: Otel.Tracer | undefined;
  readonly meter: Otel.Meter | undefined;
}

/**
 * Checks the `telemetry` option (`false`, `true`/undefined for the global providers, or an object
 * with providers) and returns the tracer and meter to use, or undefined when there is nothing to
 * report to. The global providers count only if registered before this call, as OpenTelemetry
 * asks of every instrumented library: a no-op provider here means no work per request later.
 */
export function instrumentation(
  scope: string,
  version: string,
  option: TelemetryOptions | boolean | undefined,
  field: string,
  api: OtelApi | undefined = loadOtelApi(),
): Instrumentation | undefined {
  if (option === false) return undefined;
  const given = option === undefined || option === true ? {} : option;
  if (given === null || typeof given !== 'object') {
    throw new InvalidOptionsError(field, 'must be true, false or { tracerProvider?, meterProvider? }');
  }
  const { tracerProvider, meterProvider } = given;
  if (tracerProvider !== undefined && typeof (tracerProvider as { getTracer?: unknown })?.getTracer !== 'function') {
    throw new InvalidOptionsError(`${field}.tracerProvider`, 'must be an OpenTelemetry TracerProvider (getTracer)');
  }
  if (meterProvider !== undefined && typeof (meterProvider as { getMeter?: unknown })?.getMeter !== 'function') {
    throw new InvalidOptionsError(`${field}.meterProvider`, 'must be an OpenTelemetry MeterProvider (getMeter)');
  }
  if (api === undefined) {
    if (tracerProvider !== undefined || meterProvider !== undefined) {
      throw new InvalidOptionsError(field, 'providers were given but @opentelemetry/api cannot be loaded: install it');
    }
    return undefined;
  }
  let tracer: Otel.Tracer | undefined;
  if (tracerProvider !== undefined) tracer = (tracerProvider as Otel.TracerProvider).getTracer(scope, version);
  else if (globalTracerRegistered(api)) tracer = api.trace.getTracer(scope, version);
  let meter: Otel.Meter | undefined = (
    (meterProvider as Otel.MeterProvider | undefined) ?? api.metrics.getMeterProvider()
  ).getMeter(scope, version);
  if (meter === api.createNoopMeter()) meter = undefined;
  return tracer === undefined && meter === undefined ? undefined : { api, tracer, meter };
}

function globalTracerRegistered(api: OtelApi): boolean {
  const global = api.trace.getTracerProvider();
  // The global provider is a proxy whose delegate is the no-op provider until an SDK registers.
  const noop = new api.ProxyTracerProvider().getDelegate();
  return !(global instanceof api.ProxyTracerProvider) || global.getDelegate() !== noop;
}

const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-|$)/;

/**
 * Writes the trace context of `ctx` into `headers`: through the application's propagator when it
 * registered one, else as a W3C `traceparent` (peerlb promises W3C trace context between peers
 * even when the application set up tracing without a propagator).
 */
export function injectTraceContext(api: OtelApi, ctx: Otel.Context, headers: Record<string, string>): void {
  if (api.propagation.fields().length > 0) {
    api.propagation.inject(ctx, headers);
    return;
  }
  const span = api.trace.getSpanContext(ctx);
  if (span === undefined || !api.isSpanContextValid(span)) return;
  const flags = (span.traceFlags & 0xff).toString(16).padStart(2, '0');
  headers.traceparent = `00-${span.traceId}-${span.spanId}-${flags}`;
}

/** The remote parent carried by `headers` (the inverse of `injectTraceContext`), on top of `base`. */
export function extractTraceContext(
  api: OtelApi,
  base: Otel.Context,
  headers: Record<string, string | string[] | undefined>,
): Otel.Context {
  if (api.propagation.fields().length > 0) return api.propagation.extract(base, headers);
  const raw = headers.traceparent;
  const value = Array.isArray(raw) ? raw[0] : raw;
  const match = value === undefined ? null : TRACEPARENT.exec(value.trim());
  if (match === null || match[1] === 'ff') return base;
  const spanContext: Otel.SpanContext = {
    traceId: match[2]!,
    spanId: match[3]!,
    traceFlags: Number.parseInt(match[4]!, 16) & 1,
    isRemote: true,
  };
  return api.isSpanContextValid(spanContext) ? api.trace.setSpanContext(base, spanContext) : base;
}

/** Semantic-conventions method value: a known method as is, anything else `_OTHER`. */
export function httpMethodAttribute(method: string | undefined): string {
  switch (method) {
    case 'GET':
    case 'POST':
    case 'PUT':
    case 'DELETE':
    case 'HEAD':
    case 'PATCH':
    case 'OPTIONS':
    case 'CONNECT':
    case 'TRACE':
      return method;
    default:
      return '_OTHER';
  }
}

/** Low-cardinality `error.type` for an error: its `code` (`ECONNREFUSED`, `PEERLB_DEADLINE`), else its class name. */
export function errorType(error: unknown): string {
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && code.length > 0 && code.length <= 64) return code;
  const name = (error as { name?: unknown } | null)?.name;
  return typeof name === 'string' && name.length > 0 && name.length <= 64 ? name : '_OTHER';
}

/** Bucket boundaries (seconds) the HTTP semantic conventions advise for request durations. */
export const HTTP_DURATION_BUCKETS_S = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10];
