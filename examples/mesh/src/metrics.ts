// Prometheus metrics of one instance, through OpenTelemetry: a MeterProvider registered globally
// before the instance builds its client and starts its service, so both report to it (peerlb
// instruments itself when a provider is registered), read by the Prometheus exporter on demand.
import { metrics } from '@opentelemetry/api';
import { PrometheusExporter } from '@opentelemetry/exporter-prometheus';
import { MeterProvider } from '@opentelemetry/sdk-metrics';
import type { IncomingMessage, ServerResponse } from 'node:http';

export interface PrometheusEndpoint {
  /** Answers a scrape in the Prometheus text format. */
  handle(req: IncomingMessage, res: ServerResponse): void;
  close(): Promise<void>;
}

export function startPrometheusMetrics(): PrometheusEndpoint {
  // No server of its own: the instance's server answers GET /metrics.
  const exporter = new PrometheusExporter({ preventServerStart: true });
  const provider = new MeterProvider({ readers: [exporter] });
  metrics.setGlobalMeterProvider(provider);
  return {
    handle: (req, res) => exporter.getMetricsRequestHandler(req, res),
    close: () => provider.shutdown(),
  };
}
