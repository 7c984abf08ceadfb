import type { PeerStats } from '@peerlb/client';
import { describeExit } from '../instance-process.js';
import type { InstanceView, MeshSnapshot } from '../observe.js';
import { peerState } from '../view.js';

/** What an instance is, in the browser view's words. */
export type InstanceState = 'starting' | 'registered' | 'unhealthy' | 'draining' | 'gone' | 'unreachable';

export interface InstanceFrame {
  id: string | null;
  label: string;
  service: string;
  pid: number | null;
  port: number | null;
  state: InstanceState;
  /** The registration's own state word (`registered`, `reregistering`, ...), or how the process ended. */
  detail: string;
  /** Whether the registry lists it as healthy; null when the registry could not be read. */
  listed: boolean | null;
  served: number;
  failed: number;
  inFlight: number;
  slowMs: number;
  healthy: boolean;
  /** Requests served per second, over the last few seconds. */
  rps: number;
  /** Its part of its service's requests over the same seconds (0..1). */
  share: number;
  /** Event-loop load the instance reports about itself, when its stats carry one (0..1). */
  reportedLoad: number | null;
  /** `share` once per tick, oldest first, over the last minute; null where it was not running. */
  history: Array<number | null>;
}

export interface PeerFrame {
  id: string;
  label: string;
  /** `ok`, `EJECTED 30s`, `BREAKER-OPEN`, `half-open`, `retry-after 2s`, `out`. */
  state: string;
  breaker: string;
  ejected: boolean;
  eligible: boolean;
  load: number | null;
  inFlight: number;
  requests: number;
  failures: number;
  /** Event-loop load the peer reported to this caller, when the client records one (0..1). */
  reportedLoad: number | null;
}

export interface CallerFrame {
  caller: string;
  callerId: string;
  service: string;
  discovered: boolean;
  stale: boolean;
  expired: boolean;
  panic: boolean;
  eligiblePeers: number;
  retries: number;
  lastError: string | null;
  peers: PeerFrame[];
}

export interface EdgeFrame {
  from: string;
  to: string;
  /** Attempts per second the callers of `from` sent to `to`. */
  rps: number;
}

export interface TimelineEvent {
  at: number;
  text: string;
}

/** One picture of the mesh, pushed to every browser on each tick. */
export interface MeshFrame {
  at: number;
  startedAt: number;
  registry: string;
  gatewayUrl: string | null;
  registryError: string | null;
  services: Array<{ name: string; rps: number }>;
  edges: EdgeFrame[];
  instances: InstanceFrame[];
  callers: CallerFrame[];
  events: TimelineEvent[];
}

export interface WebModelOptions {
  /** For people: `local (/tmp/...)`, `consul (127.0.0.1:8500)`. */
  registryName: string;
  gatewayUrl: string | null;
  startedAt: number;
  /** Service names in display order. */
  services: readonly string[];
}

const HISTORY_TICKS = 60;
// Rates over a few ticks, not one: at a few requests per second a single second is mostly noise.
const RATE_TICKS = 3;
const MAX_EVENTS = 40;

interface Sample {
  at: number;
  served: Map<string, number>;
  /** Attempts each caller process sent to each service, keyed `callerId service`. */
  sent: Map<string, number>;
}

/**
 * Turns the supervisor's snapshots into frames for the browser: rates and shares over the last
 * seconds, a minute of share history per instance, and a timeline of what changed. Pure data in,
 * data out; the server decides when to snapshot.
 */
export class WebModel {
  private readonly samples: Sample[] = [];
  private readonly history = new Map<string, Array<number | null>>();
  private readonly events: TimelineEvent[] = [];
  private previous: MeshSnapshot | undefined;
  private last: MeshFrame | undefined;

  constructor(private readonly options: WebModelOptions) {}

  /** A line for the timeline (an instance started, exited; a button was pressed). */
  note(text: string, at = Date.now()): void {
    this.events.push({ at, text });
    if (this.events.length > MAX_EVENTS) this.events.splice(0, this.events.length - MAX_EVENTS);
  }

  get latest(): MeshFrame | undefined {
    return this.last;
  }

  update(snap: MeshSnapshot): MeshFrame {
    const labels = labelsOf(snap);
    this.noteChanges(this.previous, snap, labels);
    this.previous = snap;

    const sample: Sample = { at: snap.at, served: new Map(), sent: new Map() };
    for (const v of snap.instances) {
      if (v.stats === undefined) continue;
      sample.served.set(v.stats.id, v.stats.served);
      for (const svc of Object.values(v.stats.client.services)) sample.sent.set(`${v.stats.id} ${svc.service}`, svc.requests);
    }
    this.samples.push(sample);
    if (this.samples.length > RATE_TICKS + 1) this.samples.shift();
    const base = this.samples[0]!;
    const seconds = (sample.at - base.at) / 1000;
    const rate = (now: number | undefined, then: number | undefined): number =>
      seconds > 0 && now !== undefined ? Math.max(0, now - (then ?? 0)) / seconds : 0;

    const instances = snap.instances.map((v) => this.instanceFrame(v, snap, rate(v.stats?.served, base.served.get(v.stats?.id ?? ''))));
    const serviceRps = new Map<string, number>();
    for (const i of instances) serviceRps.set(i.service, (serviceRps.get(i.service) ?? 0) + i.rps);
    for (const i of instances) {
      const total = serviceRps.get(i.service) ?? 0;
      i.share = total > 0 ? i.rps / total : 0;
      const key = i.id ?? i.label;
      const h = this.history.get(key) ?? [];
      h.push(i.state === 'gone' || i.state === 'starting' ? null : i.share);
      if (h.length > HISTORY_TICKS) h.splice(0, h.length - HISTORY_TICKS);
      this.history.set(key, h);
      i.history = [...h];
    }

    const edges = new Map<string, EdgeFrame>(KNOWN_CALLS.map(([from, to]) => [`${from} ${to}`, { from, to, rps: 0 }]));
    const callers: CallerFrame[] = [];
    for (const v of snap.instances) {
      if (v.stats === undefined) continue;
      for (const svc of Object.values(v.stats.client.services)) {
        const key = `${v.proc.service} ${svc.service}`;
        const edge = edges.get(key) ?? { from: v.proc.service, to: svc.service, rps: 0 };
        const sentKey = `${v.stats.id} ${svc.service}`;
        edge.rps += rate(svc.requests, base.sent.get(sentKey));
        edges.set(key, edge);
        callers.push({
          caller: v.proc.label,
          callerId: v.stats.id,
          service: svc.service,
          discovered: svc.discovered,
          stale: svc.stale,
          expired: svc.expired,
          panic: svc.panic,
          eligiblePeers: svc.eligiblePeers,
          retries: svc.retries,
          lastError: svc.lastError ?? null,
          peers: [...svc.peers]
            .map((p) => peerFrame(p, labels.get(p.id) ?? p.id))
            .sort((a, b) => a.label.localeCompare(b.label, 'en', { numeric: true })),
        });
      }
    }

    this.last = {
      at: snap.at,
      startedAt: this.options.startedAt,
      registry: this.options.registryName,
      gatewayUrl: this.options.gatewayUrl,
      registryError: snap.registryError ?? null,
      services: this.options.services.map((name) => ({ name, rps: serviceRps.get(name) ?? 0 })),
      edges: [...edges.values()],
      instances,
      callers,
      events: [...this.events],
    };
    return this.last;
  }

  private instanceFrame(v: InstanceView, snap: MeshSnapshot, rps: number): InstanceFrame {
    const s = v.stats;
    const id = v.proc.info?.id ?? s?.id ?? null;
    const listed = snap.registry === undefined || id === null ? null : (snap.registry.get(v.proc.service)?.has(id) ?? false);
    let state: InstanceState;
    let detail: string;
    if (!v.proc.alive) {
      state = 'gone';
      detail = describeExit(v.proc.exit);
    } else if (v.proc.info === undefined) {
      state = 'starting';
      detail = 'starting';
    } else if (s === undefined) {
      state = 'unreachable';
      detail = v.error ?? 'no answer';
    } else {
      detail = s.state;
      state = LEAVING.has(s.state) ? 'draining' : !s.healthy || s.state === 'unhealthy' ? 'unhealthy' : 'registered';
    }
    return {
      id,
      label: v.proc.label,
      service: v.proc.service,
      pid: v.proc.pid ?? null,
      port: v.proc.info?.port ?? null,
      state,
      detail,
      listed,
      served: s?.served ?? 0,
      failed: s?.failed ?? 0,
      inFlight: s?.inFlight ?? 0,
      slowMs: s?.slowMs ?? 0,
      healthy: s?.healthy ?? false,
      rps: state === 'gone' ? 0 : rps,
      share: 0,
      reportedLoad: reportedLoad(s),
      history: [],
    };
  }

  /** Timeline lines for what changed between two snapshots that nobody announced. */
  private noteChanges(before: MeshSnapshot | undefined, after: MeshSnapshot, labels: Map<string, string>): void {
    if (before === undefined) return;
    const name = (id: string): string => labels.get(id) ?? id;
    const beforeById = new Map<string, InstanceView>();
    for (const v of before.instances) if (v.stats) beforeById.set(v.stats.id, v);
    for (const v of after.instances) {
      const s = v.stats;
      const old = s ? beforeById.get(s.id)?.stats : undefined;
      if (s === undefined || old === undefined) continue;
      if (old.state !== s.state) this.note(`${v.proc.label}: ${old.state} → ${s.state}`, after.at);
      if (old.healthy !== s.healthy) this.note(`${v.proc.label}: health ${s.healthy ? 'passing again' : 'failing'}`, after.at);
      for (const svc of Object.values(s.client.services)) {
        const oldPeers = new Map(old.client.services[svc.service]?.peers.map((p) => [p.id, p]) ?? []);
        for (const p of svc.peers) {
          const q = oldPeers.get(p.id);
          if (q === undefined) continue;
          if (p.ejected && !q.ejected) this.note(`${v.proc.label} ejected ${name(p.id)}`, after.at);
          if (p.breaker === 'open' && q.breaker !== 'open') this.note(`${v.proc.label}: breaker of ${name(p.id)} opened`, after.at);
        }
        const wasStale = old.client.services[svc.service]?.stale ?? false;
        if (svc.stale && !wasStale) this.note(`${v.proc.label}: ${svc.service} list stale (registry failing)`, after.at);
      }
    }
    if (before.registry && after.registry) {
      for (const [service, ids] of after.registry) {
        const was = before.registry.get(service) ?? new Set<string>();
        for (const id of ids) if (!was.has(id)) this.note(`registry: ${name(id)} joined ${service}`, after.at);
        for (const id of was) if (!ids.has(id)) this.note(`registry: ${name(id)} left ${service}`, after.at);
      }
    }
  }
}

const LEAVING = new Set(['draining', 'deregistered', 'closed']);
// The shop's call graph (services/*.ts), so the picture has its shape before the first request;
// calls seen in the callers' stats are added to it.
const KNOWN_CALLS: ReadonlyArray<readonly [string, string]> = [
  ['gateway', 'catalog'],
  ['gateway', 'orders'],
  ['catalog', 'pricing'],
  ['orders', 'inventory'],
  ['orders', 'pricing'],
];

function labelsOf(snap: MeshSnapshot): Map<string, string> {
  const labels = new Map<string, string>();
  for (const v of snap.instances) if (v.proc.info) labels.set(v.proc.info.id, v.proc.label);
  return labels;
}

function peerFrame(p: PeerStats, label: string): PeerFrame {
  return {
    id: p.id,
    label,
    state: peerState(p),
    breaker: p.breaker,
    ejected: p.ejected,
    eligible: p.eligible,
    load: Number.isFinite(p.load) ? p.load : null,
    inFlight: p.inFlight,
    requests: p.requests,
    failures: p.failures,
    reportedLoad: reportedLoad(p),
  };
}

// The server-reported event-loop load: a peer's `loadReport` in client stats (issue 14,
// `{ utilization, ... }`); the other names are kept for stats that carry a bare number.
const LOAD_FIELDS = ['loadReport', 'reportedLoad', 'eventLoopLoad', 'eventLoopUtilization', 'utilization'] as const;

function reportedLoad(stats: object | undefined): number | null {
  if (stats === undefined) return null;
  const record = stats as Record<string, unknown>;
  for (const field of LOAD_FIELDS) {
    const value = record[field];
    if (typeof value === 'number' && Number.isFinite(value)) return value;
    if (value !== null && typeof value === 'object') {
      const nested = (value as Record<string, unknown>).utilization;
      if (typeof nested === 'number' && Number.isFinite(nested)) return nested;
    }
  }
  return null;
}
