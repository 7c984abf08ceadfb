import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';

// The Consul double's own HTTP check probe. It is deliberately independent of
// `probeHttp` in @peerlb/registry: the double is the yardstick that code is measured against.

export type ConsulCheckStatus = 'passing' | 'warning' | 'critical';

export interface HttpCheckSpec {
  url: string;
  method: string;
  header: Readonly<Record<string, readonly string[]>>;
  body: string;
  timeoutMs: number;
  tlsSkipVerify: boolean;
}

/** Consul keeps the tail of the body in a 4 KiB circular buffer (checks.DefaultBufSize). */
export const CHECK_OUTPUT_MAX = 4096;

/** Consul's rule: 2xx passing, 429 warning, everything else critical. */
function statusOf(code: number): ConsulCheckStatus {
  if (code >= 200 && code <= 299) return 'passing';
  if (code === 429) return 'warning';
  return 'critical';
}

/** Go's url.Error names the operation "Get", "Post"...; outputs look like Consul's, not byte-exact. */
function goOp(method: string): string {
  return method.charAt(0).toUpperCase() + method.slice(1).toLowerCase();
}

/** One run of a Consul HTTP check. Never rejects; a connection error or timeout is critical. */
export function runHttpCheck(spec: HttpCheckSpec, signal: AbortSignal): Promise<{ status: ConsulCheckStatus; output: string }> {
  return new Promise((resolve) => {
    const failOutput = (why: string) => `${goOp(spec.method)} ${JSON.stringify(spec.url)}: ${why}`;
    let settled = false;
    let req: ReturnType<typeof httpRequest> | undefined;
    let response: IncomingMessage | undefined;
    let tail = Buffer.alloc(0);
    const settle = (status: ConsulCheckStatus, output: string) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
      resolve({ status, output });
    };
    const finishWithResponse = (res: IncomingMessage) => {
      const code = res.statusCode ?? 0;
      settle(statusOf(code), `HTTP ${spec.method} ${spec.url}: ${code} ${res.statusMessage ?? ''} Output: ${tail.toString('utf8')}`);
    };
    // Go's Client.Timeout covers the whole exchange, body included: a late body keeps what it had.
    const timer = setTimeout(() => {
      if (response) finishWithResponse(response);
      else settle('critical', failOutput('context deadline exceeded (Client.Timeout exceeded while awaiting headers)'));
      req?.destroy();
    }, Math.min(spec.timeoutMs, 2 ** 31 - 1));
    timer.unref();
    const onAbort = () => {
      settle('critical', failOutput('context canceled'));
      req?.destroy();
    };
    if (signal.aborted) return onAbort();
    signal.addEventListener('abort', onAbort);

    try {
      const url = new URL(spec.url);
      const headers: Record<string, string[]> = {};
      for (const [name, values] of Object.entries(spec.header)) headers[name] = [...values];
      const has = (name: string) => Object.keys(headers).some((k) => k.toLowerCase() === name);
      if (!has('user-agent')) headers['User-Agent'] = ['Consul Health Check'];
      if (!has('accept')) headers['Accept'] = ['text/plain, text/*, */*'];
      const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
      if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error(`unsupported protocol scheme ${JSON.stringify(url.protocol.slice(0, -1))}`);
      // Consul's check client disables keep-alive: one fresh connection per run.
      req = send(url, { method: spec.method, headers, agent: false, rejectUnauthorized: !spec.tlsSkipVerify }, (res) => {
        response = res;
        res.on('data', (chunk: Buffer) => {
          tail = Buffer.concat([tail, chunk]);
          if (tail.length > CHECK_OUTPUT_MAX) tail = tail.subarray(tail.length - CHECK_OUTPUT_MAX);
        });
        res.on('end', () => finishWithResponse(res));
        res.on('error', () => finishWithResponse(res));
        res.on('close', () => finishWithResponse(res));
      });
      req.on('error', (err) => {
        if (response) finishWithResponse(response);
        else settle('critical', failOutput(err.message));
      });
      req.end(spec.body === '' ? undefined : spec.body);
    } catch (err) {
      settle('critical', failOutput(err instanceof Error ? err.message : String(err)));
    }
  });
}
