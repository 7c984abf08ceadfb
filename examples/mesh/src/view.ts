import type { PeerStats, ServiceStats } from '@peerlb/client';
import { describeExit } from './instance-process.js';
import type { MeshSnapshot } from './observe.js';

export interface ViewHeader {
  registry: string;
  gatewayUrl: string | undefined;
  startedAt: number;
  hint: string;
}

/**
 * The live view as lines of text: every instance (health, requests served) and every caller's view
 * of the peers it calls (breaker, ejection, staleness). Pure: the caller decides where it goes.
 */
export function renderView(
  snap: MeshSnapshot,
  previous: MeshSnapshot | undefined,
  header: ViewHeader,
  recentEvents: readonly string[],
  width: number,
): string[] {
  const labels = new Map<string, string>();
  for (const v of snap.instances) if (v.proc.info) labels.set(v.proc.info.id, v.proc.label);
  const nameOf = (id: string): string => labels.get(id) ?? id;

  const lines: string[] = [];
  const up = formatDuration(snap.at - header.startedAt);
  lines.push(`peerlb mesh · registry: ${header.registry} · up ${up}`);
  lines.push(`gateway: ${header.gatewayUrl ?? '(starting)'}   ${header.hint}`);
  lines.push('');

  lines.push('INSTANCES');
  lines.push(
    row(['', 'instance', 'id', 'pid', 'port', 'state', 'registry', 'served', 'req/s', '5xx', 'slow'], INSTANCE_COLUMNS),
  );
  const prevServed = new Map<string, { served: number; at: number }>();
  for (const v of previous?.instances ?? []) if (v.stats) prevServed.set(v.stats.id, { served: v.stats.served, at: previous!.at });
  for (const v of snap.instances) {
    const s = v.stats;
    const id = v.proc.info?.id ?? '-';
    const listed = snap.registry?.get(v.proc.service)?.has(id);
    const registry = snap.registry === undefined ? '?' : listed ? 'passing' : 'not listed';
    if (s === undefined) {
      const state = v.proc.alive ? (v.error ?? '?') : describeExit(v.proc.exit);
      lines.push(row(['', v.proc.label, id, String(v.proc.pid ?? '-'), String(v.proc.info?.port ?? '-'), state, registry], INSTANCE_COLUMNS));
      continue;
    }
    const before = prevServed.get(s.id);
    const rate = before && snap.at > before.at ? ((s.served - before.served) * 1000) / (snap.at - before.at) : undefined;
    lines.push(
      row(
        [
          '',
          v.proc.label,
          s.id,
          String(s.pid),
          String(v.proc.info?.port ?? '-'),
          s.healthy ? s.state : `${s.state} (health: failing)`,
          registry,
          String(s.served),
          rate === undefined ? '' : rate.toFixed(1),
          String(s.failed),
          s.slowMs > 0 ? `+${s.slowMs}ms` : '',
        ],
        INSTANCE_COLUMNS,
      ),
    );
  }
  if (snap.registryError) lines.push(`  registry could not be read: ${snap.registryError}`);
  lines.push('');

  lines.push("CALLERS · each process's view of the peers it calls (state, load estimate, attempts sent/failed)");
  let callers = 0;
  for (const v of snap.instances) {
    if (v.stats === undefined) continue;
    for (const svc of Object.values(v.stats.client.services)) {
      callers++;
      const head = `  ${pad(v.proc.label, 12)} → ${pad(svc.service, 10)} ${serviceFlags(svc)}`;
      const sorted = [...svc.peers].sort((a, b) => nameOf(a.id).localeCompare(nameOf(b.id), 'en', { numeric: true }));
      const peers = sorted.map((p) => `${nameOf(p.id)} ${peerState(p)} ${formatMs(p.load)} ${p.requests}/${p.failures}`);
      lines.push(...wrap(head, peers, ' · ', width));
    }
  }
  if (callers === 0) lines.push('  (no calls yet: send a request to the gateway)');

  if (recentEvents.length > 0) {
    lines.push('');
    lines.push('RECENT');
    for (const e of recentEvents) lines.push(`  ${e}`);
  }
  return lines.map((l) => (l.length > width ? `${l.slice(0, width - 1)}…` : l));
}

const INSTANCE_COLUMNS = [0, 12, 20, 8, 6, 12, 11, 8, 7, 5, 7];

function row(cells: string[], widths: number[]): string {
  return cells
    .map((c, i) => pad(c, widths[i] ?? 0))
    .join(' ')
    .trimEnd();
}

function pad(text: string, width: number): string {
  return text.length >= width ? text : text + ' '.repeat(width - text.length);
}

function serviceFlags(svc: ServiceStats): string {
  const flags: string[] = [];
  if (!svc.discovered) flags.push('discovering');
  else if (svc.expired) flags.push('EXPIRED (registry down too long)');
  else if (svc.stale) flags.push(`STALE cache (registry failing${svc.lastError ? `: ${svc.lastError}` : ''})`);
  else flags.push('fresh');
  if (svc.emptyPending) flags.push('empty answer held back');
  if (svc.panic) flags.push('PANIC: all peers used');
  flags.push(`${svc.eligiblePeers}/${svc.peers.length} in picker`);
  if (svc.retries > 0) flags.push(`${svc.retries} retries`);
  return `[${flags.join(', ')}]`;
}

export function peerState(p: PeerStats): string {
  if (p.ejected) return `EJECTED ${formatSeconds(p.ejectedForMs ?? 0)}`;
  if (p.breaker === 'open') return 'BREAKER-OPEN';
  if (p.breaker === 'halfOpen') return 'half-open';
  if (p.avoidedForMs !== undefined) return `retry-after ${formatSeconds(p.avoidedForMs)}`;
  if (!p.eligible) return 'out';
  return 'ok';
}

/** `head` then the items joined by `sep`, continued on indented lines when wider than `width`. */
function wrap(head: string, items: string[], sep: string, width: number): string[] {
  const lines: string[] = [];
  let line = `${head} `;
  const indent = ' '.repeat(Math.min(30, head.length + 1));
  for (let i = 0; i < items.length; i++) {
    const piece = (i === 0 || line === indent ? '' : sep) + items[i];
    if (line.length + piece.length > width && line !== indent && line.trim() !== head.trim()) {
      lines.push(line.trimEnd());
      line = indent + items[i];
    } else {
      line += piece;
    }
  }
  lines.push(line.trimEnd());
  return lines;
}

export function formatMs(ms: number): string {
  if (!Number.isFinite(ms)) return '-';
  return ms < 10 ? `${ms.toFixed(1)}ms` : `${Math.round(ms)}ms`;
}

function formatSeconds(ms: number): string {
  return `${Math.ceil(ms / 1000)}s`;
}

export function formatDuration(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  const m = Math.floor(s / 60);
  return m > 0 ? `${m}m${String(s % 60).padStart(2, '0')}s` : `${s}s`;
}
