import type { IncomingMessage, ServerResponse } from 'node:http';
import type { TLSSocket } from 'node:tls';
import {
  extractTraceContext,
  httpMethodAttribute,
  HTTP_DURATION_BUCKETS_S,
  scopeVersion,
  type Instrumentation,
  type Otel,
} from '@peerlb/registry/otel';
import type { ServingHandler, ServingStep } from './serving-step.js';

export const SERVING_SCOPE = '@peerlb/registration';
/** This package's version, for the instrumentation scope. */
export const servingVersion = (): string => scopeVersion(import.meta.url);

/**
 * A server span per request (parent: the caller's W3C trace context) made current for the
 * handler, so calls it makes with `@peerlb/client` become its children; and the semantic
 * conventions' `http.server.request.duration` histogram. Built only when a tracer or meter
 * provider is there (see `instrumentation`).
 */
export function telemetryStep(otel: Instrumentation): ServingStep {
  const { api, tracer } = otel;
  const duration = otel.meter?.createHistogram('http.server.request.duration', {
    unit: 's',
    description: 'Duration of HTTP server requests.',
    advice: { explicitBucketBoundaries: HTTP_DURATION_BUCKETS_S },
  });
  return {
    name: 'telemetry',
    handle(req: IncomingMessage, res: ServerResponse, next: ServingHandler): unknown {
      const startedAt = performance.now();
      const method = httpMethodAttribute(req.method);
      const scheme = (req.socket as TLSSocket).encrypted ? 'https' : 'http';
      let span: Otel.Span | undefined;
      let ctx: Otel.Context | undefined;
      if (tracer !== undefined) {
        const parent = extractTraceContext(api, api.context.active(), req.headers);
        span = tracer.startSpan(
          method === '_OTHER' ? 'HTTP' : method,
          {
            kind: api.SpanKind.SERVER,
            attributes: {
              'http.request.method': method,
              'url.path': pathOf(req.url),
              'url.scheme': scheme,
              'network.protocol.version': req.httpVersion,
              'client.address': req.socket.remoteAddress,
              'user_agent.original': req.headers['user-agent'],
            },
          },
          parent,
        );
        ctx = api.trace.setSpan(parent, span);
      }
      res.once('close', () => {
        // 'close' comes for every answer; without 'finish' first the exchange was cut short.
        const finished = res.writableFinished;
        const status = res.statusCode;
        const errorType = !finished ? 'aborted' : status >= 500 ? String(status) : undefined;
        if (span !== undefined) {
          span.setAttribute('http.response.status_code', status);
          if (errorType !== undefined) {
            span.setAttribute('error.type', errorType);
            span.setStatus({ code: api.SpanStatusCode.ERROR });
          }
          span.end();
        }
        if (duration !== undefined) {
          const attributes: Otel.Attributes = { 'http.request.method': method, 'url.scheme': scheme };
          if (finished) attributes['http.response.status_code'] = status;
          if (errorType !== undefined) attributes['error.type'] = errorType;
          duration.record((performance.now() - startedAt) / 1000, attributes);
        }
      });
      return ctx === undefined ? next(req, res) : api.context.with(ctx, next, undefined, req, res);
    },
  };
}

function pathOf(url: string | undefined): string {
  if (url === undefined) return '/';
  const q = url.indexOf('?');
  return q < 0 ? url : url.slice(0, q);
}
