/**
 * What publishing does, on one machine: pack the workspace's public packages, run a local npm
 * registry (Verdaccio) on 127.0.0.1 that proxies the real registry for third-party packages, and
 * run plain `npm` against it with a config of its own.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const REPO = fileURLToPath(new URL('../../', import.meta.url));
const REGISTRY_SCRIPT = fileURLToPath(new URL('../fixtures/local-npm-registry.mjs', import.meta.url));

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs a command to its end (or kills it at `timeoutMs`); never rejects, the caller judges the result. */
export function run(
  command: string,
  args: string[],
  options: { cwd: string; env?: NodeJS.ProcessEnv; timeoutMs: number },
): Promise<RunResult> {
  return new Promise((resolve) => {
    execFile(
      command,
      args,
      { cwd: options.cwd, env: options.env ?? process.env, timeout: options.timeoutMs, maxBuffer: 32 * 1024 * 1024 },
      (error, stdout, stderr) => {
        const failure = error as (Error & { code?: unknown; signal?: NodeJS.Signals | null }) | null;
        resolve({
          code: failure ? (typeof failure.code === 'number' ? failure.code : null) : 0,
          signal: failure?.signal ?? null,
          stdout,
          stderr,
        });
      },
    );
  });
}

/** A command's result for an assertion message: exit, then the tail of its output. */
export function describeRun(what: string, result: RunResult): string {
  const tail = (text: string) => text.split('\n').slice(-40).join('\n');
  return `${what}: exit ${result.code} signal ${result.signal}\n--- stdout\n${tail(result.stdout)}\n--- stderr\n${tail(result.stderr)}`;
}

export interface WorkspacePackage {
  name: string;
  version: string;
  dir: string;
}

/** Every package of `packages/` that is meant to be published (not `private`): new ones included. */
export async function publishablePackages(): Promise<WorkspacePackage[]> {
  const root = join(REPO, 'packages');
  const found: WorkspacePackage[] = [];
  for (const entry of await readdir(root, { withFileTypes: true })) {
    if (!entry.isDirectory()) continue;
    const dir = join(root, entry.name);
    let manifest: { name: string; version: string; private?: boolean };
    try {
      manifest = JSON.parse(await readFile(join(dir, 'package.json'), 'utf8'));
    } catch {
      continue;
    }
    if (manifest.private) continue;
    found.push({ name: manifest.name, version: manifest.version, dir });
  }
  return found.sort((a, b) => a.name.localeCompare(b.name));
}

/** `pnpm pack` of one package (its `prepack` builds it; pnpm rewrites `workspace:` ranges). */
export async function pack(pkg: WorkspacePackage, destination: string): Promise<string> {
  const before = new Set(await readdir(destination));
  const result = await run('pnpm', ['pack', '--pack-destination', destination], { cwd: pkg.dir, timeoutMs: 120_000 });
  if (result.code !== 0) throw new Error(describeRun(`pnpm pack of ${pkg.name}`, result));
  const made = (await readdir(destination)).filter((f) => f.endsWith('.tgz') && !before.has(f));
  if (made.length !== 1) throw new Error(`pnpm pack of ${pkg.name} made ${made.length} tarballs`);
  return join(destination, made[0]!);
}

/**
 * The environment for `npm` runs: nothing inherited from the pnpm script that runs the tests
 * (pnpm exports its settings as npm_config_*), the config file `npmrc` instead of the user's.
 * npm's own cache is kept: tarballs seen by earlier runs are not downloaded again.
 */
export function npmEnv(npmrc: string, extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    const lower = key.toLowerCase();
    if (lower.startsWith('npm_') || lower.startsWith('pnpm_') || lower === 'node_options') continue;
    if (key === 'CONSUL_HTTP_ADDR' || key === 'CONSUL_HTTP_TOKEN' || key === 'PEERLB_REGISTRY_DIR') continue;
    env[key] = value;
  }
  return { ...env, npm_config_userconfig: npmrc, npm_config_update_notifier: 'false', ...extra };
}

/** The registry this machine's npm uses (read at run time: no registry host is written anywhere). */
export async function upstreamRegistry(): Promise<string> {
  const result = await run('npm', ['config', 'get', 'registry'], { cwd: REPO, timeoutMs: 30_000 });
  const url = result.stdout.trim();
  if (result.code !== 0 || !/^https?:\/\//.test(url)) throw new Error(describeRun('npm config get registry', result));
  return url.endsWith('/') ? url : `${url}/`;
}

export interface LocalNpmRegistry {
  url: string;
  /** An npm config file: this registry, with a token allowed to publish. */
  npmrc: string;
  /** What Verdaccio printed, for failure messages. */
  log(): string;
  close(): Promise<void>;
}

/**
 * Verdaccio in its own process, storage under `dir`. `@peerlb/*` is served only from what is
 * published to it (never looked up upstream); everything else is proxied to `upstream`.
 */
export async function startLocalNpmRegistry(dir: string, upstream: string): Promise<LocalNpmRegistry> {
  await mkdir(dir, { recursive: true });
  const config = join(dir, 'config.yaml');
  await writeFile(
    config,
    [
      'storage: ./storage',
      'auth:',
      '  htpasswd:',
      '    file: ./htpasswd',
      '    max_users: 10',
      'uplinks:',
      '  upstream:',
      `    url: ${JSON.stringify(upstream)}`,
      '    timeout: 60s',
      '    max_fails: 10',
      '    fail_timeout: 10s',
      'packages:',
      "  '@peerlb/*':",
      '    access: $all',
      '    publish: $authenticated',
      "  '**':",
      '    access: $all',
      '    publish: $authenticated',
      '    proxy: upstream',
      'web:',
      '  enable: false',
      'log: { type: stdout, format: pretty, level: warn }',
      '',
    ].join('\n'),
  );
  const child: ChildProcess = spawn(process.execPath, [REGISTRY_SCRIPT, config], {
    cwd: dir,
    env: npmEnv(join(dir, 'unused-npmrc')),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stderr!.on('data', (chunk: Buffer) => {
    output += chunk.toString();
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const port = await new Promise<number>((resolve, reject) => {
    const lines = createInterface({ input: child.stdout! });
    const timer = setTimeout(() => reject(new Error(`Verdaccio did not start in 60 s\n${output}`)), 60_000);
    lines.on('line', (line) => {
      const match = /^\{"port":(\d+)\}$/.exec(line);
      if (match) {
        clearTimeout(timer);
        resolve(Number(match[1]));
      } else output += `${line}\n`;
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`Verdaccio exited (${code}) before listening\n${output}`));
    });
  });
  const close = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(timer);
    }
  };
  try {
    const url = `http://127.0.0.1:${port}/`;
    const token = await addUser(url, 'peerlb-ci', randomBytes(18).toString('base64url'));
    const npmrc = join(dir, 'npmrc');
    await writeFile(
      npmrc,
      [`registry=${url}`, `//127.0.0.1:${port}/:_authToken=${token}`, 'audit=false', 'fund=false', ''].join('\n'),
      { mode: 0o600 },
    );
    return { url, npmrc, log: () => output, close };
  } catch (err) {
    await close();
    throw err;
  }
}

/** Creates a user the way `npm adduser` does and returns its token. */
async function addUser(registry: string, name: string, password: string): Promise<string> {
  const res = await fetch(new URL(`-/user/org.couchdb.user:${name}`, registry), {
    method: 'PUT',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ name, password, type: 'user', roles: [], date: new Date().toISOString() }),
    signal: AbortSignal.timeout(30_000),
  });
  const body = (await res.json()) as { token?: string };
  if (!res.ok || typeof body.token !== 'string') throw new Error(`adding a user to the local registry: HTTP ${res.status}`);
  return body.token;
}
