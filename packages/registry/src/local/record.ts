import { InvalidOptionsError } from '../errors.js';
import type { CheckStatus, ServiceInstance } from '../types.js';
import type { NormalisedCheck } from '../validate.js';
import { parseInstance } from '../validate.js';

/**
 * The on-disk shape of one instance in the local registry, version 1. Every file is untrusted
 * input (another process, another peerlb version, or a stray editor may have written it), so
 * `parseRecord` checks all of it before anything is served.
 */
export const RECORD_VERSION = 1;

export interface CheckState {
  status: CheckStatus;
  /** Consul's check output: the heartbeat note, or the last HTTP poll's summary. */
  output: string;
  /** When the current status began (epoch ms): how long an instance has been critical. */
  since: number;
  /**
   * Past this instant the check counts as critical whatever `status` says (epoch ms). For TTL
   * checks this is the TTL; for HTTP checks it is the lease of the process that runs the check.
   * `null` until the first heartbeat.
   */
  expiresAt: number | null;
}

export interface TtlCheckState extends CheckState {
  ttlMs: number;
}

export interface HttpCheckState extends CheckState {
  url: string;
  intervalMs: number;
  timeoutMs: number;
}

export interface RecordOwner {
  pid: number;
  hostname: string;
  /** Random id of the `LocalRegistry` object that registered the instance: it alone runs the HTTP check. */
  registry: string;
}

export interface LocalRecord {
  peerlb: typeof RECORD_VERSION;
  instance: ServiceInstance;
  owner: RecordOwner;
  checks: { ttl?: TtlCheckState; http?: HttpCheckState };
  deregisterCriticalAfterMs?: number;
  registeredAt: number;
}

// Caps what a file may hold, so a hostile or broken file cannot make readers allocate much or
// block their event loop parsing it (a 1 MiB deeply nested record took up to ~500 ms per read).
// A real record is well under 4 KiB; register() refuses one that would not fit.
export const MAX_RECORD_BYTES = 64 * 1024;
export const MAX_OUTPUT_CHARS = 4096;

const STATUSES: readonly string[] = ['passing', 'warning', 'critical'];

/**
 * The file body of `record`, within `MAX_RECORD_BYTES`: check outputs (free text) are shortened
 * when that is what it takes; a record too large without them (thousands of tags or meta
 * entries) is refused, as readers would skip it.
 */
export function serializeRecord(record: LocalRecord): string {
  let text = `${JSON.stringify(record)}\n`;
  if (Buffer.byteLength(text) <= MAX_RECORD_BYTES) return text;
  const trimmed: LocalRecord = { ...record, checks: { ...record.checks } };
  if (trimmed.checks.ttl) trimmed.checks.ttl = { ...trimmed.checks.ttl, output: trimmed.checks.ttl.output.slice(0, 256) };
  if (trimmed.checks.http) trimmed.checks.http = { ...trimmed.checks.http, output: trimmed.checks.http.output.slice(0, 256) };
  text = `${JSON.stringify(trimmed)}\n`;
  const bytes = Buffer.byteLength(text);
  if (bytes > MAX_RECORD_BYTES) {
    throw new InvalidOptionsError(
      'instance',
      `its registry record would take ${bytes} bytes, over the local registry's limit of ${MAX_RECORD_BYTES}: use fewer or shorter tags and meta`,
    );
  }
  return text;
}

/**
 * How long a passing HTTP result stays valid without a rewrite. The owner renews it once the next
 * poll's result (at most `interval + timeout` away) could land after `expiresAt - LEASE_SLACK_MS`,
 * so a live, passing owner rewrites about every second poll and never lets its lease lapse, while
 * a dead owner's instance turns critical at most `2 * (interval + timeout) + slack` after its last
 * result.
 */
export const LEASE_SLACK_MS = 250;

export function httpLeaseMs(intervalMs: number, timeoutMs: number): number {
  return 2 * (intervalMs + timeoutMs) + LEASE_SLACK_MS;
}

export function httpLeaseNeedsRenewal(check: { intervalMs: number; timeoutMs: number; expiresAt: number | null }, now: number): boolean {
  if (check.expiresAt === null) return true;
  return now + check.intervalMs + check.timeoutMs + LEASE_SLACK_MS >= check.expiresAt;
}

/** `<id>.json`, with `:` (legal in ids, not in Windows file names) percent-encoded. */
export function recordFileName(id: string): string {
  return `${encodeURIComponent(id)}.json`;
}

export function isRecordFileName(name: string): boolean {
  return name.endsWith('.json') && !name.startsWith('.');
}

/**
 * A fresh record for `register`. Re-registering keeps a check's state when its definition did not
 * change, as Consul keeps check status across re-registration: a restarting registrant does not
 * flap its instance out of the healthy set.
 */
export function buildRecord(args: {
  instance: ServiceInstance;
  check: NormalisedCheck;
  httpUrl: string | undefined;
  owner: RecordOwner;
  now: number;
  previous: LocalRecord | undefined;
}): LocalRecord {
  const { check, now, previous } = args;
  const fresh = (): CheckState => ({ status: 'critical', output: '', since: now, expiresAt: null });
  const checks: LocalRecord['checks'] = {};
  if (check.ttlMs !== undefined) {
    const old = previous?.checks.ttl;
    checks.ttl = old && old.ttlMs === check.ttlMs ? { ...old } : { ...fresh(), ttlMs: check.ttlMs };
  }
  if (check.http !== undefined && args.httpUrl !== undefined) {
    const old = previous?.checks.http;
    const same =
      old !== undefined &&
      old.url === args.httpUrl &&
      old.intervalMs === check.http.intervalMs &&
      old.timeoutMs === check.http.timeoutMs;
    checks.http = same
      ? { ...old }
      : { ...fresh(), url: args.httpUrl, intervalMs: check.http.intervalMs, timeoutMs: check.http.timeoutMs };
  }
  const record: LocalRecord = {
    peerlb: RECORD_VERSION,
    instance: args.instance,
    owner: args.owner,
    checks,
    registeredAt: now,
  };
  if (check.deregisterCriticalAfterMs !== undefined) record.deregisterCriticalAfterMs = check.deregisterCriticalAfterMs;
  return record;
}

/** The status a reader must assume now: an expired check is critical. */
export function effectiveStatus(check: CheckState, now: number): CheckStatus {
  if (check.expiresAt !== null && now >= check.expiresAt) return 'critical';
  return check.status;
}

function checksOf(record: LocalRecord): CheckState[] {
  const out: CheckState[] = [];
  if (record.checks.ttl) out.push(record.checks.ttl);
  if (record.checks.http) out.push(record.checks.http);
  return out;
}

/** Healthy iff every check is passing and unexpired (Consul's `?passing`: warning is not passing). */
export function isHealthy(record: LocalRecord, now: number): boolean {
  const checks = checksOf(record);
  return checks.length > 0 && checks.every((c) => effectiveStatus(c, now) === 'passing');
}

/**
 * Healthy but for lapsed leases: every check passed when last written, and one ran out. Its owner
 * died, hung, or could not write (see write-probe.ts).
 */
export function lapsedWhilePassing(record: LocalRecord, now: number): boolean {
  const checks = checksOf(record);
  return (
    checks.length > 0 &&
    checks.every((c) => c.status === 'passing') &&
    checks.some((c) => c.expiresAt !== null && now >= c.expiresAt)
  );
}

/**
 * Since when the instance has had a critical check, or undefined when none is critical now.
 * `countLapses: false` counts only a critical status its owner wrote, not a lease that ran out.
 */
export function criticalSince(record: LocalRecord, now: number, countLapses = true): number | undefined {
  let since: number | undefined;
  for (const c of checksOf(record)) {
    let start: number | undefined;
    if (c.status === 'critical') start = c.since;
    else if (countLapses && c.expiresAt !== null && now >= c.expiresAt) start = c.expiresAt;
    if (start !== undefined && (since === undefined || start < since)) since = start;
  }
  return since;
}

export function shouldReap(record: LocalRecord, now: number, countLapses = true): boolean {
  if (record.deregisterCriticalAfterMs === undefined) return false;
  const since = criticalSince(record, now, countLapses);
  return since !== undefined && now - since >= record.deregisterCriticalAfterMs;
}

/** The next instant a not-yet-critical check of this record lapses, or Infinity. */
export function nextExpiry(record: LocalRecord, now: number): number {
  let next = Infinity;
  for (const c of checksOf(record)) {
    if (c.status !== 'critical' && c.expiresAt !== null && c.expiresAt > now && c.expiresAt < next) next = c.expiresAt;
  }
  return next;
}

export type RecordParse = { ok: true; record: LocalRecord } | { ok: false; reason: string };

/** Checks an untrusted file body. `fileName` must be the name the record's id maps to. */
export function parseRecord(raw: unknown, fileName: string): RecordParse {
  const bad = (reason: string): RecordParse => ({ ok: false, reason });
  if (!isObject(raw)) return bad('not a JSON object');
  if (raw.peerlb !== RECORD_VERSION) {
    return bad(
      typeof raw.peerlb === 'number'
        ? `unsupported record version ${raw.peerlb} (this peerlb reads version ${RECORD_VERSION})`
        : 'not a peerlb registry record',
    );
  }
  const instance = parseInstance(raw.instance);
  if (!instance.ok) return bad(`instance.${instance.field}: ${instance.reason}`);
  if (recordFileName(instance.value.id) !== fileName) {
    return bad(`instance "${instance.value.id}" belongs in ${recordFileName(instance.value.id)}`);
  }
  const owner = raw.owner;
  if (!isObject(owner) || !isInt(owner.pid) || typeof owner.hostname !== 'string' || typeof owner.registry !== 'string') {
    return bad('owner: must be {pid, hostname, registry}');
  }
  if (!isObject(raw.checks)) return bad('checks: must be an object');
  const checks: LocalRecord['checks'] = {};
  if (raw.checks.ttl !== undefined) {
    const ttl = parseCheckState(raw.checks.ttl);
    if (typeof ttl === 'string') return bad(`checks.ttl.${ttl}`);
    const ttlMs = (raw.checks.ttl as Record<string, unknown>).ttlMs;
    if (!isPositive(ttlMs)) return bad('checks.ttl.ttlMs: must be a positive number');
    checks.ttl = { ...ttl, ttlMs };
  }
  if (raw.checks.http !== undefined) {
    const http = parseCheckState(raw.checks.http);
    if (typeof http === 'string') return bad(`checks.http.${http}`);
    const h = raw.checks.http as Record<string, unknown>;
    if (typeof h.url !== 'string') return bad('checks.http.url: must be a string');
    if (!isPositive(h.intervalMs)) return bad('checks.http.intervalMs: must be a positive number');
    if (!isPositive(h.timeoutMs)) return bad('checks.http.timeoutMs: must be a positive number');
    checks.http = { ...http, url: h.url, intervalMs: h.intervalMs, timeoutMs: h.timeoutMs };
  }
  if (!checks.ttl && !checks.http) return bad('checks: holds neither ttl nor http');
  if (raw.deregisterCriticalAfterMs !== undefined && !isPositive(raw.deregisterCriticalAfterMs)) {
    return bad('deregisterCriticalAfterMs: must be a positive number');
  }
  if (!isFiniteNumber(raw.registeredAt)) return bad('registeredAt: must be a number');
  const record: LocalRecord = {
    peerlb: RECORD_VERSION,
    instance: instance.value,
    owner: { pid: owner.pid, hostname: owner.hostname, registry: owner.registry },
    checks,
    registeredAt: raw.registeredAt,
  };
  if (raw.deregisterCriticalAfterMs !== undefined) record.deregisterCriticalAfterMs = raw.deregisterCriticalAfterMs as number;
  return { ok: true, record };
}

function parseCheckState(raw: unknown): CheckState | string {
  if (!isObject(raw)) return 'must be an object';
  if (typeof raw.status !== 'string' || !STATUSES.includes(raw.status)) return 'status: must be passing, warning or critical';
  if (typeof raw.output !== 'string') return 'output: must be a string';
  if (!isFiniteNumber(raw.since)) return 'since: must be a number';
  if (raw.expiresAt !== null && !isFiniteNumber(raw.expiresAt)) return 'expiresAt: must be a number or null';
  return {
    status: raw.status as CheckStatus,
    output: raw.output.slice(0, MAX_OUTPUT_CHARS),
    since: raw.since,
    expiresAt: raw.expiresAt as number | null,
  };
}

function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

function isFiniteNumber(value: unknown): value is number {
  return typeof value === 'number' && Number.isFinite(value);
}

function isPositive(value: unknown): value is number {
  return isFiniteNumber(value) && value > 0;
}

function isInt(value: unknown): value is number {
  return typeof value === 'number' && Number.isInteger(value);
}
