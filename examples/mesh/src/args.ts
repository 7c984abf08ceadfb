import { parseArgs } from 'node:util';

export interface CliArgs {
  demo: boolean;
  help: boolean;
  instances: number;
  gatewayPort: number;
  /** The browser view's first port to try (then the next ones); 0: any free port; undefined: no view. */
  webPort: number | undefined;
  portRange: { start: number; end: number } | undefined;
  drainMs: number;
  userRatePerSec: number;
  ewmaDecayMs: number;
  workers: number;
  summaryJson: string | undefined;
}

export const USAGE = `Usage: pnpm mesh [options]

Starts the shop mesh (gateway + catalog, pricing, inventory, orders) and shows a live view
until Ctrl-C. Registry: Consul when CONSUL_HTTP_ADDR is set, else a fresh local registry
directory for this run.

Options:
  --demo                 run the bounded failure demo (kill, stop, start, slow down) and exit
                         0 only if every expectation held
  --instances N          instances of each backend (default 3)
  --port N               gateway port: N or the next free one (default 8080; 0: any free port)
  --web-port N           browser view on 127.0.0.1: port N or the next free one (default 8090;
                         0: any free port)
  --no-web               no browser view
  --ports A-B            port range searched for backends (default 7100-7999; 0: any free port)
  --drain-ms N           how long a stopping instance keeps serving after deregistering (default 2000)
  --user-rate N          gateway rate limit per end user, requests/s (default 20)
  --ewma-decay-ms N      memory of the peak-EWMA latency estimate of every client (default 1000)
  --workers N            node:cluster workers per backend instance, each registered as its own
                         instance on its own port (default 1: no workers; not with --demo)
  --summary-json PATH    (--demo) also write the summary as JSON to PATH
  -h, --help             this text
`;

export class UsageError extends Error {
  override name = 'UsageError';
}

export function parseCliArgs(argv: readonly string[]): CliArgs {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...argv],
      strict: true,
      allowPositionals: false,
      options: {
        demo: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
        instances: { type: 'string', default: '3' },
        port: { type: 'string', default: '8080' },
        'web-port': { type: 'string', default: '8090' },
        'no-web': { type: 'boolean', default: false },
        ports: { type: 'string', default: '7100-7999' },
        'drain-ms': { type: 'string', default: '2000' },
        'user-rate': { type: 'string', default: '20' },
        'ewma-decay-ms': { type: 'string', default: '1000' },
        workers: { type: 'string', default: '1' },
        'summary-json': { type: 'string' },
      },
    });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const v = parsed.values;
  const instances = int('--instances', v.instances, 1, 10);
  // The demo kills one instance of a service and stops another: with one, nobody would be left.
  if (v.demo === true && instances < 2) throw new UsageError('--demo needs --instances 2 or more');
  const workers = int('--workers', v.workers, 1, 16);
  // The demo kills and stops instance processes and checks what each one served.
  if (v.demo === true && workers > 1) throw new UsageError('--demo runs one process per instance: leave out --workers');
  return {
    demo: v.demo === true,
    help: v.help === true,
    instances,
    gatewayPort: int('--port', v.port, 0, 65_535),
    webPort: v['no-web'] === true ? undefined : int('--web-port', v['web-port'], 0, 65_535),
    portRange: range(v.ports ?? '7100-7999'),
    drainMs: int('--drain-ms', v['drain-ms'], 0, 60_000),
    userRatePerSec: int('--user-rate', v['user-rate'], 1, 100_000),
    ewmaDecayMs: int('--ewma-decay-ms', v['ewma-decay-ms'], 1, 600_000),
    workers,
    summaryJson: v['summary-json'],
  };
}

function int(flag: string, raw: string | undefined, min: number, max: number): number {
  const n = Number(raw);
  if (raw === undefined || raw === '' || !Number.isInteger(n) || n < min || n > max) {
    throw new UsageError(`${flag} must be an integer in ${min}..${max}, got ${JSON.stringify(raw)}`);
  }
  return n;
}

function range(raw: string): { start: number; end: number } | undefined {
  if (raw === '0') return undefined;
  const m = /^(\d+)-(\d+)$/.exec(raw);
  const start = Number(m?.[1]);
  const end = Number(m?.[2]);
  if (!m || start < 1 || end > 65_535 || end < start) {
    throw new UsageError(`--ports must be A-B with 1 <= A <= B <= 65535, or 0, got ${JSON.stringify(raw)}`);
  }
  return { start, end };
}
