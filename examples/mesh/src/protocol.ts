import type { ClientStats } from '@peerlb/client';
import type { DeadlineStats } from '@peerlb/registration';

/** The budget the gateway gives each request from outside (`x-peerlb-timeout` when none came). */
export const GATEWAY_BUDGET_MS = 800;

/** How long a backend's call waits for an answer before it hedges (a second instance). */
export const BACKEND_HEDGE_DELAY_MS = 50;

/** The backends of the shop, in start order (callees first, so callers find them at once). */
export const BACKENDS = ['pricing', 'inventory', 'catalog', 'orders'] as const;
export type BackendName = (typeof BACKENDS)[number];
export type ServiceName = BackendName | 'gateway';

export function isServiceName(value: unknown): value is ServiceName {
  return value === 'gateway' || (BACKENDS as readonly unknown[]).includes(value);
}

/** What the supervisor tells an instance process (argv[2], JSON). */
export interface InstanceConfig {
  service: ServiceName;
  /** How the supervisor names it in views: `catalog#2`. */
  label: string;
  /** First port to try, then the next ones (the gateway); 0 for an ephemeral one. */
  port?: number;
  /** Port range searched by `startService` (backends); absent: an ephemeral port. */
  portRange?: { start: number; end: number };
  /** How long a stopping instance keeps serving after deregistering. */
  drainMs: number;
  /** The gateway's per-user limit (requests per second, burst the same). */
  userRatePerSec: number;
  /** Time constant of the peak-EWMA load metric of every client (see instance.ts). */
  ewmaDecayMs: number;
  /** node:cluster workers of this instance, each its own registered instance (default 1: none). */
  workers?: number;
}

/** Instance -> supervisor, over the IPC channel. */
export type InstanceMessage =
  | { type: 'ready'; id: string; service: ServiceName; port: number; url: string; pid: number; registeredAt: number }
  | { type: 'failed'; message: string; code?: string };

/** `GET /admin/stats` on every instance. */
export interface InstanceStats {
  id: string;
  label: string;
  service: ServiceName;
  pid: number;
  url: string;
  /** The registration state (`registered`, `unhealthy`, `draining`, ...). */
  state: string;
  /** What the instance's health function answers (toggled by `POST /admin/health`). */
  healthy: boolean;
  startedAt: number;
  registeredAt: number | null;
  /** Epoch ms of the first request served (admin requests not counted). */
  firstRequestAt: number | null;
  /** Requests served, admin requests not counted. */
  served: number;
  /** Of those, answered with a 5xx. */
  failed: number;
  inFlight: number;
  /** Delay added to requests (`POST /admin/slow`), to `slowShare` of them (1: all). */
  slowMs: number;
  slowShare?: number;
  /** Requests whose work stopped because their deadline passed or their caller left. */
  stoppedByDeadline?: number;
  /** The serving side's deadline counters (requests with a budget, answered expired, cancelled, late). */
  deadline?: DeadlineStats | null;
  /** The event-loop utilization (0..1) it reports on its answers (`endpoint-load-metrics`). */
  eventLoopUtilization?: number | null;
  /** Requests served per caller (the `x-peerlb-caller` header), at most 32 callers kept. */
  callers: Record<string, number>;
  /** This process's client: its view of every service it calls. */
  client: ClientStats;
}
