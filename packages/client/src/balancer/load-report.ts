/**
 * Reading the ORCA per-answer load report (`endpoint-load-metrics`) a peer sends, in the TEXT
 * form (`TEXT application_utilization=0.42, rps_fractional=310, named_metrics.inflight=7`, `:` is
 * accepted for `=` as Envoy does) and the JSON form (`JSON {"application_utilization":0.42}`).
 *
 * The value comes from the network: whatever it holds, parsing does bounded work, never throws,
 * and returns `undefined` rather than a value it cannot trust (NaN, infinities, negatives, a
 * utilization above 1, duplicate keys, oversized values).
 */

/** The ORCA response header. */
export const LOAD_REPORT_HEADER = 'endpoint-load-metrics';

/** What a caller takes from one report. */
export interface LoadReport {
  /** Busy share of the peer's event loop (or CPU), 0..1. */
  readonly utilization: number;
  /** Requests per second the peer reports, if it does. */
  readonly rps: number | undefined;
  /** Requests in flight at the peer (all its callers), if it reports `named_metrics.inflight`. */
  readonly inflight: number | undefined;
}

/** Longer values are not read at all: ours are under 100 characters. */
export const MAX_REPORT_LENGTH = 512;
/** Entries of a TEXT report read at most. */
const MAX_ENTRIES = 16;
const NUMBER = /^[+]?(\d{1,15}(\.\d{0,15})?|\.\d{1,15})([eE][+-]?\d{1,3})?$/;

/**
 * The report in a header value as undici or node:http deliver it: a string, or several values
 * (only the first is read, as Envoy does). Anything else, or nothing usable: `undefined`.
 */
export function parseLoadReport(value: unknown): LoadReport | undefined {
  const text = Array.isArray(value) ? value[0] : value;
  if (typeof text !== 'string' || text.length > MAX_REPORT_LENGTH) return undefined;
  if (text.startsWith('TEXT ')) return fromText(text.slice(5));
  if (text.startsWith('JSON ')) return fromJson(text.slice(5));
  return undefined;
}

function fromText(body: string): LoadReport | undefined {
  const entries = body.split(',', MAX_ENTRIES + 1);
  if (entries.length > MAX_ENTRIES) return undefined;
  const seen = new Set<string>();
  let app: number | undefined;
  let cpu: number | undefined;
  let rps: number | undefined;
  let inflight: number | undefined;
  for (const entry of entries) {
    const at = firstSeparator(entry);
    if (at < 0) return undefined;
    const key = entry.slice(0, at).trim();
    const raw = entry.slice(at + 1).trim();
    if (key === '' || seen.has(key) || !NUMBER.test(raw)) return undefined;
    seen.add(key);
    const n = Number(raw);
    if (key === 'application_utilization') app = n;
    else if (key === 'cpu_utilization') cpu = n;
    else if (key === 'rps_fractional') rps = n;
    else if (key === 'named_metrics.inflight') inflight = n;
  }
  return build(app, cpu, rps, inflight);
}

function firstSeparator(entry: string): number {
  const eq = entry.indexOf('=');
  const colon = entry.indexOf(':');
  if (eq < 0) return colon;
  if (colon < 0) return eq;
  return Math.min(eq, colon);
}

function fromJson(body: string): LoadReport | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    return undefined;
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) return undefined;
  const o = parsed as Record<string, unknown>;
  const named = o.named_metrics ?? o.namedMetrics;
  const inflight = named !== null && typeof named === 'object' ? (named as Record<string, unknown>).inflight : undefined;
  const num = (v: unknown) => (v === undefined ? undefined : typeof v === 'number' ? v : Number.NaN);
  return build(
    num(o.application_utilization ?? o.applicationUtilization),
    num(o.cpu_utilization ?? o.cpuUtilization),
    num(o.rps_fractional ?? o.rpsFractional),
    num(inflight),
  );
}

/**
 * ORCA's rule: application utilization when set (and non-zero), else CPU utilization. A report
 * without either tells nothing to balance on.
 */
function build(app: number | undefined, cpu: number | undefined, rps: number | undefined, inflight: number | undefined): LoadReport | undefined {
  if (!validOrAbsent(app, 1) || !validOrAbsent(cpu, 1) || !validOrAbsent(rps, 1e9) || !validOrAbsent(inflight, 1e9)) {
    return undefined;
  }
  const utilization = app !== undefined && app > 0 ? app : cpu ?? app;
  if (utilization === undefined) return undefined;
  return { utilization, rps, inflight };
}

function validOrAbsent(value: number | undefined, max: number): boolean {
  return value === undefined || (Number.isFinite(value) && value >= 0 && value <= max);
}
