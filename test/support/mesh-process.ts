/**
 * `pnpm mesh` as a user runs it, for tests that need a running mesh: the built supervisor in a
 * child process, small (ephemeral ports), its gateway and browser view URLs read from its output.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const CLI = fileURLToPath(new URL('../../examples/mesh/dist/cli.js', import.meta.url));

export interface RunningMesh {
  readonly child: ChildProcess;
  readonly gatewayUrl: string;
  /** The browser view, when the mesh was started with one. */
  readonly webUrl: string | undefined;
  /** The run's local registry directory (undefined on Consul). */
  readonly registryDir: string | undefined;
  /** Pid of each instance, by label (`catalog#1`). */
  readonly pids: ReadonlyMap<string, number>;
  /** Every output line so far, for failure messages. */
  readonly output: string[];
  /** SIGTERM, wait for a clean exit (its code); then SIGKILL whatever is left. */
  stop(): Promise<number | null>;
}

export interface StartMeshOptions {
  instances?: number;
  web?: boolean;
  env?: NodeJS.ProcessEnv;
  readyTimeoutMs?: number;
}

export async function startMesh(options: StartMeshOptions = {}): Promise<RunningMesh> {
  const args = [CLI, '--instances', String(options.instances ?? 2), '--port', '0', '--ports', '0', '--drain-ms', '300'];
  args.push(...(options.web === false ? ['--no-web'] : ['--web-port', '0']));
  const child = spawn(process.execPath, args, {
    env: options.env ?? process.env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const output: string[] = [];
  const pids = new Map<string, number>();
  let registryDir: string | undefined;
  let gatewayUrl: string | undefined;
  let webUrl: string | undefined;
  let resolveReady!: () => void;
  const ready = new Promise<void>((resolve) => {
    resolveReady = resolve;
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  for (const stream of [child.stdout, child.stderr]) {
    createInterface({ input: stream! }).on('line', (line) => {
      output.push(line);
      const pid = /\] \S+ (\S+): started pid=(\d+)/.exec(line);
      if (pid) pids.set(pid[1]!, Number(pid[2]));
      const dir = /registry: local \((\/[^)]+)\)/.exec(line);
      if (dir) registryDir ??= dir[1];
      const gw = /^\[mesh\] gateway: (http:\/\/\S+)/.exec(line);
      if (gw) gatewayUrl = gw[1];
      const web = /^\[mesh\] browser view: (http:\/\/\S+)/.exec(line);
      if (web) webUrl = web[1];
      // The browser view's line follows the gateway's; without a view, the gateway's is the last.
      if (gatewayUrl && (webUrl || options.web === false || /Ctrl-C stops everything/.test(line))) resolveReady();
    });
  }
  let stopped: Promise<number | null> | undefined;
  const stop = (): Promise<number | null> => {
    stopped ??= (async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      const code = await Promise.race([exited, new Promise<null>((r) => setTimeout(() => r(null), 20_000))]);
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      // Instances run in their own process groups: whatever outlived the supervisor goes now.
      for (const pid of pids.values()) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
      return code;
    })();
    return stopped;
  };
  const timeoutMs = options.readyTimeoutMs ?? 45_000;
  const outcome = await Promise.race([
    ready.then(() => 'ready' as const),
    exited.then(() => 'exited' as const),
    new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), timeoutMs)),
  ]);
  if (outcome !== 'ready' || gatewayUrl === undefined) {
    await stop();
    throw new Error(`the mesh did not start (${outcome}); its output:\n${output.slice(-30).join('\n')}`);
  }
  return { child, gatewayUrl, webUrl, registryDir, pids, output, stop };
}
