import { performance } from 'node:perf_hooks';
import { createClient, type Client, type PeerInfo } from '@peerlb/client';
import type { CallArgs, CommonArgs } from '../args.js';
import { EXIT, noInstances, toCliError } from '../errors.js';
import { formatMs, percentile, progressBar, round, table } from '../format.js';
import type { CliIo, OpenedRegistry } from '../io.js';

type Args = CallArgs & CommonArgs;

// A progress bar redrawn on every answer would cost more than the calls at high rates.
const PROGRESS_EVERY_MS = 100;

/**
 * `peerlb call <service> <path>`: through a peerlb client, as a program using the library would
 * call: discovery, pick, breaker, retries on another instance. One call prints the answer and who
 * gave it; `--count N` prints the share each instance got and latency percentiles.
 */
export async function callCommand(args: Args, opened: OpenedRegistry, io: CliIo): Promise<number> {
  const { registry, description } = opened;
  // Ask the registry first: "cannot reach it" and "no instance" are then clear errors, not a call
  // that waits out its deadline.
  const listed = await registry.list(args.service, { signal: AbortSignal.any([io.signal, AbortSignal.timeout(args.timeoutMs)]) });
  if (listed.length === 0) throw noInstances(args.service, description);

  const client = createClient({ registry, caller: args.caller, timeoutMs: args.timeoutMs });
  let retries = 0;
  client.on('retry', () => retries++);
  try {
    if (args.count === undefined) return await single(client, args, opened, io, () => retries);
    return await many(client, args, opened, io, () => retries);
  } finally {
    await client.close();
  }
}

interface Answer {
  status: number;
  peer: PeerInfo;
  headersMs: number;
  totalMs: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

async function send(client: Client, args: Args, signal: AbortSignal): Promise<Answer> {
  const started = performance.now();
  const res = await client.request({
    service: args.service,
    path: args.path,
    method: args.method,
    headers: args.headers,
    body: args.body ?? null,
    signal,
  });
  const headersMs = performance.now() - started;
  const body = await res.body.text();
  return { status: res.statusCode, peer: res.peer, headersMs, totalMs: performance.now() - started, headers: res.headers, body };
}

async function single(client: Client, args: Args, { description }: OpenedRegistry, io: CliIo, retries: () => number): Promise<number> {
  const a = await send(client, args, io.signal);
  const attempts = retries() + 1;
  if (args.json) {
    io.stdout.write(
      `${JSON.stringify({
        registry: description,
        service: args.service,
        method: args.method,
        path: args.path,
        status: a.status,
        instance: a.peer,
        attempts,
        timings: { headersMs: round(a.headersMs, 3), totalMs: round(a.totalMs, 3) },
        headers: a.headers,
        body: bodyValue(a),
      })}\n`,
    );
  } else {
    io.stdout.write(a.body.endsWith('\n') || a.body === '' ? a.body : `${a.body}\n`);
    io.stderr.write(
      `${a.status} from ${a.peer.id} (${a.peer.address}:${a.peer.port}) in ${formatMs(a.totalMs)} ` +
        `(headers after ${formatMs(a.headersMs)}); ${attempts} attempt(s)\n`,
    );
  }
  return a.status >= 400 ? EXIT.httpError : EXIT.ok;
}

/** The body in `--json`: parsed when the service said it is JSON and it parses, else the text. */
function bodyValue(a: Answer): unknown {
  const type = a.headers['content-type'];
  if (typeof type === 'string' && /\bjson\b/i.test(type)) {
    try {
      return JSON.parse(a.body);
    } catch {
      // not JSON after all: the text
    }
  }
  return a.body;
}

async function many(client: Client, args: Args, opened: OpenedRegistry, io: CliIo, retries: () => number): Promise<number> {
  const total = args.count!;
  const perPeer = new Map<string, { peer: PeerInfo; requests: number }>();
  const byStatus: Record<string, number> = {};
  const errors: Record<string, number> = {};
  let firstError: string | undefined;
  const latencies: number[] = [];
  let started = 0;
  let done = 0;
  const showProgress = io.stderr.isTTY === true && !args.json;
  let lastDrawn = 0;
  const draw = (force: boolean): void => {
    const now = performance.now();
    if (!showProgress || (!force && now - lastDrawn < PROGRESS_EVERY_MS)) return;
    lastDrawn = now;
    io.stderr.write(`\r${progressBar(done, total)}`);
  };

  const begin = performance.now();
  const worker = async (): Promise<void> => {
    while (started < total && !io.signal.aborted) {
      started++;
      try {
        const a = await send(client, args, io.signal);
        byStatus[a.status] = (byStatus[a.status] ?? 0) + 1;
        latencies.push(a.totalMs);
        const entry = perPeer.get(a.peer.id) ?? { peer: a.peer, requests: 0 };
        entry.requests++;
        perPeer.set(a.peer.id, entry);
      } catch (err) {
        if (io.signal.aborted) break;
        const e = toCliError(err, { service: args.service, registry: opened.description });
        errors[e.code] = (errors[e.code] ?? 0) + 1;
        firstError ??= e.message;
      }
      done++;
      draw(false);
    }
  };
  await Promise.all(Array.from({ length: Math.min(args.concurrency, total) }, worker));
  const durationMs = performance.now() - begin;
  if (showProgress) {
    draw(true);
    io.stderr.write('\n');
  }

  const answered = latencies.length;
  const failed = done - answered;
  latencies.sort((x, y) => x - y);
  const instances = [...perPeer.values()]
    .sort((x, y) => x.peer.id.localeCompare(y.peer.id, 'en', { numeric: true }))
    .map((p) => ({ ...p.peer, requests: p.requests, share: answered > 0 ? round(p.requests / answered, 4) : 0 }));
  const latencyMs = {
    min: latencies[0] ?? null,
    p50: percentile(latencies, 50),
    p90: percentile(latencies, 90),
    p99: percentile(latencies, 99),
    max: latencies.at(-1) ?? null,
  };
  const errorStatuses = Object.entries(byStatus).filter(([s]) => Number(s) >= 400).reduce((n, [, c]) => n + c, 0);

  if (args.json) {
    const ms = (v: number | null): number | null => (v === null || Number.isNaN(v) ? null : round(v, 3));
    io.stdout.write(
      `${JSON.stringify({
        registry: opened.description,
        service: args.service,
        method: args.method,
        path: args.path,
        count: total,
        sent: done,
        concurrency: args.concurrency,
        interrupted: io.signal.aborted,
        durationMs: round(durationMs, 1),
        answered,
        failed,
        byStatus,
        errors,
        retries: retries(),
        instances,
        latencyMs: Object.fromEntries(Object.entries(latencyMs).map(([k, v]) => [k, ms(v)])),
      })}\n`,
    );
  } else {
    const statuses = Object.entries(byStatus)
      .map(([s, c]) => `${s}: ${c}`)
      .join(', ');
    const lines = [
      `${args.method} ${args.path} on ${args.service} (${opened.description}): ${done} of ${total} request(s) in ` +
        `${(durationMs / 1000).toFixed(2)} s (${round((done * 1000) / Math.max(1, durationMs), 1)}/s), concurrency ${args.concurrency}` +
        (io.signal.aborted ? ' (interrupted)' : ''),
      `answered: ${answered}${statuses ? ` (${statuses})` : ''}; no answer: ${failed}` +
        (firstError ? ` (first: ${firstError})` : '') +
        `; retries on another instance: ${retries()}`,
      '',
      table([
        ['INSTANCE', 'ADDRESS', 'REQUESTS', 'SHARE'],
        ...instances.map((i) => [i.id, `${i.address}:${i.port}`, String(i.requests), `${(i.share * 100).toFixed(1)}%`]),
      ]),
      '',
      `latency: min ${formatMs(latencyMs.min ?? Number.NaN)}  p50 ${formatMs(latencyMs.p50)}  p90 ${formatMs(latencyMs.p90)}  ` +
        `p99 ${formatMs(latencyMs.p99)}  max ${formatMs(latencyMs.max ?? Number.NaN)}`,
    ];
    io.stdout.write(`${lines.join('\n')}\n`);
  }
  if (failed > 0) return EXIT.requestFailed;
  return errorStatuses > 0 ? EXIT.httpError : EXIT.ok;
}
