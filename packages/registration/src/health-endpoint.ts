import type { IncomingMessage, ServerResponse } from 'node:http';
import type { HealthVerdict } from './health.js';

/** Path of a request target, without query; undefined when it cannot be parsed. */
export function pathOf(url: string | undefined): string | undefined {
  if (url === undefined) return undefined;
  if (url.startsWith('/')) {
    const q = url.search(/[?#]/);
    return q === -1 ? url : url.slice(0, q);
  }
  try {
    return new URL(url).pathname;
  } catch {
    return undefined;
  }
}

/**
 * Answers the health endpoint: 200 `{"status":"passing"}` when healthy, 503 with the reason's
 * category otherwise. The reason text itself stays out of the body: a health check URL is often
 * reachable by more people than the logs are.
 */
export async function answerHealth(
  req: IncomingMessage,
  res: ServerResponse,
  verdict: () => Promise<HealthVerdict>,
): Promise<void> {
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'application/json' });
    res.end(req.method === 'HEAD' ? undefined : '{"status":"method not allowed"}');
    return;
  }
  const v = await verdict();
  const status = v.ok ? 'passing' : leavingReason(v.reason) ?? 'failing';
  const body = JSON.stringify({ status });
  res.writeHead(v.ok ? 200 : 503, {
    'content-type': 'application/json',
    'cache-control': 'no-store',
    'content-length': Buffer.byteLength(body),
  });
  res.end(req.method === 'HEAD' ? undefined : body);
}

function leavingReason(reason: string): string | undefined {
  return reason === 'draining' || reason === 'deregistered' || reason === 'closed' ? reason : undefined;
}
