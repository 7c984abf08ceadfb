/**
 * OpenTelemetry providers to report to instead of the globally registered ones. Typed by shape,
 * so peerlb's public types do not require `@opentelemetry/api` (an optional peer dependency):
 * pass the SDK's `MeterProvider` / `TracerProvider` (or `BasicTracerProvider`) objects.
 */
export interface TelemetryOptions {
  tracerProvider?: { getTracer(name: string, version?: string): unknown };
  meterProvider?: { getMeter(name: string, version?: string): unknown };
}
