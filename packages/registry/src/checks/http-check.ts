import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { CheckStatus } from '../types.js';

/** Consul's rule: 2xx passing, 429 warning, everything else (and no answer) critical. */
export function statusFromHttpCode(code: number): CheckStatus {
  if (code >= 200 && code < 300) return 'passing';
  if (code === 429) return 'warning';
  return 'critical';
}

/** One poll: GET `url` within `timeoutMs`; resolves a status, never rejects. */
export function probeHttp(url: string, timeoutMs: number, signal?: AbortSignal): Promise<{ status: CheckStatus; output: string }> {
  return new Promise((resolve) => {
    const timeout = AbortSignal.timeout(timeoutMs);
    const combined = signal ? AbortSignal.any([signal, timeout]) : timeout;
    const requestFn = url.startsWith('https:') ? httpsRequest : httpRequest;
    let settled = false;
    const settle = (status: CheckStatus, output: string) => {
      if (settled) return;
      settled = true;
      resolve({ status, output });
    };
    try {
      const req = requestFn(url, { method: 'GET', signal: combined, agent: false, headers: { 'user-agent': 'peerlb-health-check' } }, (res) => {
        const status = statusFromHttpCode(res.statusCode ?? 0);
        // Drain so the socket closes cleanly; the body is not needed.
        res.resume();
        res.on('end', () => settle(status, `HTTP GET ${url}: ${res.statusCode}`));
        res.on('error', () => settle(status, `HTTP GET ${url}: ${res.statusCode}`));
      });
      req.on('error', (err) => settle('critical', `HTTP GET ${url}: ${err.message}`));
      req.end();
    } catch (err) {
      settle('critical', `HTTP GET ${url}: ${(err as Error).message}`);
    }
  });
}

export interface HttpCheckLoop {
  stop(): void;
}

/**
 * Polls `url` every `intervalMs` (the first poll at once) and reports each result. Polls never
 * overlap. The timer is unref'd: a check must not keep a process alive on its own.
 */
export function startHttpCheckLoop(options: {
  url: string;
  intervalMs: number;
  timeoutMs: number;
  onResult: (status: CheckStatus, output: string) => void;
}): HttpCheckLoop {
  const controller = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const poll = async () => {
    timer = undefined;
    const result = await probeHttp(options.url, options.timeoutMs, controller.signal);
    if (controller.signal.aborted) return;
    options.onResult(result.status, result.output);
    timer = setTimeout(poll, options.intervalMs);
    timer.unref();
  };
  void poll();
  return {
    stop() {
      controller.abort();
      if (timer) clearTimeout(timer);
    },
  };
}

export function httpCheckUrl(target: { path: string } | { url: string }, address: string, port: number): string {
  if ('url' in target) return target.url;
  const host = address.includes(':') ? `[${address}]` : address;
  return `http://${host}:${port}${target.path}`;
}
