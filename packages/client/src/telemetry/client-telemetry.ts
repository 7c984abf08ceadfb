import {
  errorType,
  httpMethodAttribute,
  HTTP_DURATION_BUCKETS_S,
  injectTraceContext,
  scopeVersion,
  type Instrumentation,
  type Otel,
} from '@peerlb/registry/otel';
import { schemeOf } from '@peerlb/registry';
import type { CallTelemetry } from '../call/context.js';
import { PEER_STATES, peerStateOf, type PeerState } from '../peers/exclusions.js';
import type { Peer } from '../peers/peer.js';
import type { ServicePeers } from '../peers/service-peers.js';

export const CLIENT_SCOPE = '@peerlb/client';

/** This package's version, for the instrumentation scope. */
export const clientVersion = (): string => scopeVersion(import.meta.url);

/** The span of one call, and the context its attempts are children of. */
export interface CallTrace {
  readonly span: Otel.Span;
  readonly context: Otel.Context;
}

/**
 * What the client reports to OpenTelemetry (built only when a tracer or meter provider is there):
 *
 * - per attempt (one HTTP request to a peer): a CLIENT span, child of the call's span, with the
 *   W3C trace context sent to the peer; `http.client.request.duration` (s) with the HTTP semantic
 *   conventions' attributes; `peerlb.client.attempts` by `peerlb.outcome`;
 * - per call: an INTERNAL span `peerlb <service>` covering every attempt (the caller's active span
 *   is its parent), with a `peerlb.retry` event per retry; `peerlb.client.rate_limited`;
 * - read when metrics are collected, from counters the client keeps anyway (nothing per request):
 *   `peerlb.client.retries`, `peerlb.client.hedges`, `peerlb.client.ejections`,
 *   `peerlb.client.registry.errors`, `peerlb.client.discovery.stale`, and `peerlb.client.peers`
 *   by `peerlb.peer.state` (the exclusion names of `explain()`).
 */
export class ClientTelemetry implements CallTelemetry {
  readonly tracer: Otel.Tracer | undefined;
  readonly #api: Instrumentation['api'];
  readonly #duration: Otel.Histogram | undefined;
  readonly #attempts: Otel.Counter | undefined;
  readonly #rateLimited: Otel.Counter | undefined;
  readonly #meter: Otel.Meter | undefined;
  readonly #observables: Otel.Observable[] = [];
  readonly #observe: Otel.BatchObservableCallback | undefined;

  constructor(otel: Instrumentation, services: () => Iterable<ServicePeers>, clock: () => number) {
    this.#api = otel.api;
    this.tracer = otel.tracer;
    const meter = otel.meter;
    this.#meter = meter;
    if (meter === undefined) return;
    this.#duration = meter.createHistogram('http.client.request.duration', {
      unit: 's',
      description: 'Duration of HTTP client requests (one per attempt on a peer).',
      advice: { explicitBucketBoundaries: HTTP_DURATION_BUCKETS_S },
    });
    this.#attempts = meter.createCounter('peerlb.client.attempts', {
      unit: '{attempt}',
      description: 'Attempts sent to peers, by outcome (success, failure).',
    });
    this.#rateLimited = meter.createCounter('peerlb.client.rate_limited', {
      unit: '{call}',
      description: "Calls refused by the caller's rate limit (nothing sent).",
    });
    const retries = meter.createObservableCounter('peerlb.client.retries', {
      unit: '{retry}',
      description: 'Attempts made on another peer after a failed one.',
    });
    const hedges = meter.createObservableCounter('peerlb.client.hedges', {
      unit: '{hedge}',
      description: 'Extra attempts launched while an earlier one was still in flight.',
    });
    const ejections = meter.createObservableCounter('peerlb.client.ejections', {
      unit: '{ejection}',
      description: 'Peers taken out by outlier detection.',
    });
    const registryErrors = meter.createObservableCounter('peerlb.client.registry.errors', {
      unit: '{error}',
      description: 'Failed registry reads and watch updates.',
    });
    const stale = meter.createObservableGauge('peerlb.client.discovery.stale', {
      unit: '1',
      description: '1 while the registry fails and the last known peers are served, else 0.',
    });
    const peers = meter.createObservableGauge('peerlb.client.peers', {
      unit: '{peer}',
      description: 'Known peers by state: healthy, or why they are not picked.',
    });
    this.#observables.push(retries, hedges, ejections, registryErrors, stale, peers);
    this.#observe = (result) => {
      const now = clock();
      for (const svc of services()) {
        const service = { 'peerlb.service': svc.service };
        const counters = svc.counters;
        result.observe(retries, counters.retries, service);
        const hedged = (counters as { hedges?: number }).hedges;
        if (hedged !== undefined) result.observe(hedges, hedged, service);
        result.observe(ejections, counters.ejections, service);
        result.observe(registryErrors, svc.watch.errorCount, service);
        result.observe(stale, svc.watch.status().stale ? 1 : 0, service);
        const byState = new Map<PeerState, number>(PEER_STATES.map((state) => [state, 0]));
        for (const peer of svc.peerList) {
          const state = peerStateOf(svc, peer, now);
          byState.set(state, byState.get(state)! + 1);
        }
        for (const [state, count] of byState) {
          result.observe(peers, count, { 'peerlb.service': svc.service, 'peerlb.peer.state': state });
        }
      }
    };
    meter.addBatchObservableCallback(this.#observe, this.#observables);
  }

  /** Starts a call's span, child of the caller's active span. Undefined without a tracer. */
  startCall(service: string, method: string): CallTrace | undefined {
    const tracer = this.tracer;
    if (tracer === undefined) return undefined;
    const api = this.#api;
    const parent = api.context.active();
    const span = tracer.startSpan(
      `peerlb ${service}`,
      {
        kind: api.SpanKind.INTERNAL,
        attributes: { 'peerlb.service': service, 'http.request.method': httpMethodAttribute(method) },
      },
      parent,
    );
    return { span, context: api.trace.setSpan(parent, span) };
  }

  /** Starts the CLIENT span of attempt `number` on `peer`. */
  startAttempt(call: CallTrace, peer: Peer, number: number, method: string, path: string): Otel.Span {
    const api = this.#api;
    const instance = peer.instance;
    const known = httpMethodAttribute(method);
    const q = path.indexOf('?');
    const attributes: Otel.Attributes = {
      'http.request.method': known,
      'server.address': instance.address,
      'server.port': instance.port,
      // Without the query string: it may carry what should not leave in telemetry.
      'url.full': `${schemeOf(instance)}://${hostOf(instance.address)}:${instance.port}${q < 0 ? path : path.slice(0, q)}`,
      'peerlb.service': peer.service,
      'peerlb.peer.id': peer.id,
    };
    if (number > 1) attributes['http.request.resend_count'] = number - 1;
    return this.tracer!.startSpan(known === '_OTHER' ? 'HTTP' : known, { kind: api.SpanKind.CLIENT, attributes }, call.context);
  }

  /** Adds the attempt's trace context to its request headers. */
  inject(span: Otel.Span, set: (name: string, value: string) => void): void {
    const carrier: Record<string, string> = {};
    injectTraceContext(this.#api, this.#api.trace.setSpan(this.#api.context.active(), span), carrier);
    for (const name in carrier) set(name, carrier[name]!);
  }

  /** One attempt ended: its span, `http.client.request.duration`, `peerlb.client.attempts`. */
  attemptDone(
    span: Otel.Span | undefined,
    peer: Peer,
    method: string,
    latencyMs: number,
    failed: boolean,
    statusCode: number | undefined,
    error: unknown,
  ): void {
    const type = error !== undefined ? errorType(error) : statusCode !== undefined && statusCode >= 400 ? String(statusCode) : undefined;
    if (span !== undefined) {
      if (statusCode !== undefined) span.setAttribute('http.response.status_code', statusCode);
      if (type !== undefined) {
        span.setAttribute('error.type', type);
        span.setStatus({ code: this.#api.SpanStatusCode.ERROR });
      }
      span.end();
    }
    if (this.#duration !== undefined) {
      const instance = peer.instance;
      const attributes: Otel.Attributes = {
        'http.request.method': httpMethodAttribute(method),
        'server.address': instance.address,
        'server.port': instance.port,
      };
      if (statusCode !== undefined) attributes['http.response.status_code'] = statusCode;
      if (type !== undefined) attributes['error.type'] = type;
      this.#duration.record(latencyMs / 1000, attributes);
      this.#attempts!.add(1, { 'peerlb.service': peer.service, 'peerlb.outcome': failed ? 'failure' : 'success' });
    }
  }

  /** A retry on another peer: an event on the call's span. */
  retry(call: CallTrace, attempt: number, peer: Peer, statusCode: number | undefined, error: unknown): void {
    const attributes: Otel.Attributes = { 'peerlb.attempt': attempt, 'peerlb.peer.id': peer.id };
    if (statusCode !== undefined) attributes['http.response.status_code'] = statusCode;
    if (error !== undefined) attributes['error.type'] = errorType(error);
    call.span.addEvent('peerlb.retry', attributes);
  }

  /** The call ended: with the answer of `peer` (`statusCode`), or with `error`. */
  endCall(call: CallTrace, peer: Peer | undefined, attempts: number, statusCode: number | undefined, error: unknown): void {
    const span = call.span;
    span.setAttribute('peerlb.attempts', attempts);
    if (peer !== undefined) span.setAttribute('peerlb.peer.id', peer.id);
    if (statusCode !== undefined) span.setAttribute('http.response.status_code', statusCode);
    if (error !== undefined) {
      span.setAttribute('error.type', errorType(error));
      span.setStatus({ code: this.#api.SpanStatusCode.ERROR });
    }
    span.end();
  }

  rateLimited(service: string): void {
    this.#rateLimited?.add(1, { 'peerlb.service': service });
  }

  /** Stops reporting the observed metrics (the client closed). */
  close(): void {
    if (this.#observe !== undefined) this.#meter?.removeBatchObservableCallback(this.#observe, this.#observables);
  }
}

function hostOf(address: string): string {
  return address.includes(':') ? `[${address}]` : address;
}
