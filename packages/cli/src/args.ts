import { parseArgs, type ParseArgsConfig } from 'node:util';
import { UsageError } from './errors.js';

export const USAGE = `Usage: peerlb <command> [options]

Commands:
  services                          the services in the registry, with their healthy instances
  instances <service> [--watch]     the healthy instances of a service (--watch: follow changes)
  call <service> <path> [options]   one request (or --count N) through the peerlb balancer

Options of call:
  -X, --method METHOD    HTTP method (default GET)
  -d, --data BODY        request body (sent as is; set its type with -H)
  -H, --header 'N: V'    a request header (repeatable)
  -n, --count N          send N requests: share per instance, latency percentiles
  -c, --concurrency N    with --count, requests in flight at once (default 1)
  --caller NAME          who is calling (x-peerlb-caller; the rate-limit key) (default peerlb-cli)

Options of every command:
  --json                 machine-readable output (--watch: one JSON line per change)
  --timeout MS           deadline of each registry read and each call (default 10000)
  -h, --help             this text

Registry: Consul when CONSUL_HTTP_ADDR is set (CONSUL_HTTP_TOKEN, CONSUL_CACERT, ... as the
library reads them), else the local registry in PEERLB_REGISTRY_DIR or the per-user default.

Exit codes: 0 ok; 1 the service answered with a status >= 400; 2 bad command line;
3 registry unreachable; 4 no healthy instance; 5 a request got no answer; 130 interrupted.
`;

export interface CommonArgs {
  json: boolean;
  timeoutMs: number;
}

export type CliArgs =
  | { command: 'help' }
  | ({ command: 'services' } & CommonArgs)
  | ({ command: 'instances'; service: string; watch: boolean } & CommonArgs)
  | ({ command: 'call' } & CommonArgs & CallArgs);

export interface CallArgs {
  service: string;
  path: string;
  method: string;
  body: string | undefined;
  headers: Record<string, string>;
  count: number | undefined;
  concurrency: number;
  caller: string;
}

const COMMON = {
  json: { type: 'boolean', default: false },
  timeout: { type: 'string', default: '10000' },
  help: { type: 'boolean', short: 'h', default: false },
} as const satisfies ParseArgsConfig['options'];

const MAX_COUNT = 1_000_000;
const MAX_CONCURRENCY = 256;

export function parseCliArgs(argv: readonly string[]): CliArgs {
  const [command, ...rest] = argv;
  if (command === undefined) throw new UsageError('missing command');
  if (command === '-h' || command === '--help' || command === 'help') return { command: 'help' };
  switch (command) {
    case 'services': {
      const { values, positionals } = parse(rest, COMMON);
      if (values.help) return { command: 'help' };
      expectPositionals(positionals, [], 'services');
      return { command, ...common(values) };
    }
    case 'instances': {
      const { values, positionals } = parse(rest, { ...COMMON, watch: { type: 'boolean', short: 'w', default: false } });
      if (values.help) return { command: 'help' };
      const [service] = expectPositionals(positionals, ['<service>'], 'instances');
      return { command, service: service!, watch: values.watch === true, ...common(values) };
    }
    case 'call': {
      const { values, positionals } = parse(rest, {
        ...COMMON,
        method: { type: 'string', short: 'X', default: 'GET' },
        data: { type: 'string', short: 'd' },
        header: { type: 'string', short: 'H', multiple: true, default: [] },
        count: { type: 'string', short: 'n' },
        concurrency: { type: 'string', short: 'c', default: '1' },
        caller: { type: 'string', default: 'peerlb-cli' },
      });
      if (values.help) return { command: 'help' };
      const [service, path] = expectPositionals(positionals, ['<service>', '<path>'], 'call');
      if (!path!.startsWith('/')) throw new UsageError(`<path> must start with "/", got ${JSON.stringify(path)}`);
      const count = values.count === undefined ? undefined : int('--count', values.count, 1, MAX_COUNT);
      const concurrency = int('--concurrency', values.concurrency, 1, MAX_CONCURRENCY);
      if (count === undefined && values.concurrency !== '1') throw new UsageError('--concurrency needs --count');
      return {
        command,
        service: service!,
        path: path!,
        method: values.method!.toUpperCase(),
        body: values.data,
        headers: headers(values.header ?? []),
        count,
        concurrency,
        caller: values.caller!,
        ...common(values),
      };
    }
    default:
      throw new UsageError(`unknown command ${JSON.stringify(command)}`);
  }
}

function parse<O extends NonNullable<ParseArgsConfig['options']>>(args: string[], options: O) {
  try {
    return parseArgs({ args, options, strict: true, allowPositionals: true });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

function common(values: { json?: boolean | undefined; timeout?: string | undefined }): CommonArgs {
  return { json: values.json === true, timeoutMs: int('--timeout', values.timeout, 1, 3_600_000) };
}

function expectPositionals(given: string[], names: string[], command: string): string[] {
  if (given.length < names.length) throw new UsageError(`${command}: missing ${names.slice(given.length).join(' ')}`);
  if (given.length > names.length) throw new UsageError(`${command}: unexpected argument ${JSON.stringify(given[names.length])}`);
  return given;
}

function int(flag: string, raw: string | undefined, min: number, max: number): number {
  const n = Number(raw);
  if (raw === undefined || raw.trim() === '' || !Number.isInteger(n) || n < min || n > max) {
    throw new UsageError(`${flag} must be an integer in ${min}..${max}, got ${JSON.stringify(raw)}`);
  }
  return n;
}

/** `-H 'Name: value'` as curl takes it; the client validates names and values before sending. */
function headers(raw: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const h of raw) {
    const colon = h.indexOf(':');
    if (colon <= 0) throw new UsageError(`-H must be "Name: value", got ${JSON.stringify(h)}`);
    const name = h.slice(0, colon).trim().toLowerCase();
    const value = h.slice(colon + 1).trim();
    out[name] = out[name] === undefined ? value : `${out[name]}, ${value}`;
  }
  return out;
}
