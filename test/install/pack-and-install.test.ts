// Issue 16: the packages install like any npm package. Every public workspace package is packed
// (as `pnpm publish` would), installed from the tarballs alone (the README's Install route), then
// published to a local registry on 127.0.0.1; an empty project runs plain
// `npm i @peerlb/client @peerlb/registration` against it and a program that starts two instances,
// makes 20 balanced calls and shuts down. The package READMEs' quick starts run there as written.
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  describeRun,
  npmEnv,
  pack,
  publishablePackages,
  run,
  startLocalNpmRegistry,
  upstreamRegistry,
  type LocalNpmRegistry,
  type WorkspacePackage,
} from '../support/local-npm.js';
import { quickStartCode } from '../support/readme-code.js';

const REPO = fileURLToPath(new URL('../../', import.meta.url));
const SMOKE = fileURLToPath(new URL('../fixtures/install-smoke.mjs', import.meta.url));
// npm installs through a registry that proxies the real one: generous bounds for a loaded machine
// and a cold cache; a warm run takes a fraction of this.
const NPM_TIMEOUT_MS = 240_000;
const PROGRAM_TIMEOUT_MS = 60_000;

let work: string;
let registry: LocalNpmRegistry | undefined;
let packages: WorkspacePackage[];
const tarballs = new Map<string, string>();

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'peerlb-install-'));
  packages = await publishablePackages();
  await mkdir(join(work, 'tarballs'));
  for (const pkg of packages) tarballs.set(pkg.name, await pack(pkg, join(work, 'tarballs')));
  registry = await startLocalNpmRegistry(join(work, 'registry'), await upstreamRegistry());
}, 300_000);

afterAll(async () => {
  await registry?.close();
  if (work) await rm(work, { recursive: true, force: true });
});

async function emptyProject(name: string): Promise<string> {
  const dir = join(work, name);
  await mkdir(dir);
  await writeFile(join(dir, 'package.json'), `${JSON.stringify({ name, private: true, type: 'module' }, null, 2)}\n`);
  return dir;
}

/** The environment of every command in a project: its own registry folder, no Consul. */
function projectEnv(dir: string): NodeJS.ProcessEnv {
  return npmEnv(registry!.npmrc, { PEERLB_REGISTRY_DIR: join(dir, '.peerlb-registry') });
}

async function npmInstall(dir: string, specs: string[]): Promise<void> {
  const result = await run('npm', ['install', '--no-audit', '--no-fund', ...specs], {
    cwd: dir,
    env: projectEnv(dir),
    timeoutMs: NPM_TIMEOUT_MS,
  });
  expect(result.code, `${describeRun(`npm install ${specs.join(' ')}`, result)}\n--- registry\n${registry!.log()}`).toBe(0);
}

interface SmokeReport {
  instances: string[];
  peersSeen: string[];
  answers: { status: number; peer: string; path: string }[];
}

/** Runs the two-instances-20-calls program in `dir`; it must print its report and exit 0 by itself. */
async function runSmoke(dir: string): Promise<SmokeReport> {
  await writeFile(join(dir, 'smoke.mjs'), await readFile(SMOKE));
  const result = await run(process.execPath, ['smoke.mjs'], { cwd: dir, env: projectEnv(dir), timeoutMs: PROGRAM_TIMEOUT_MS });
  expect(result.code, describeRun('the install smoke program', result)).toBe(0);
  const report = JSON.parse(result.stdout.trim().split('\n').at(-1)!) as SmokeReport;
  expect(report.instances).toHaveLength(2);
  expect(report.peersSeen).toEqual(report.instances);
  expect(report.answers).toHaveLength(20);
  report.answers.forEach((answer, n) => {
    expect(answer.status).toBe(200);
    expect(answer.path).toBe(`/call/${n}`);
    expect(report.instances).toContain(answer.peer);
  });
  return report;
}

async function tarballManifest(tarball: string): Promise<Record<string, unknown>> {
  const result = await run('tar', ['-xzOf', tarball, 'package/package.json'], { cwd: work, timeoutMs: 30_000 });
  expect(result.code, describeRun(`tar of ${basename(tarball)}`, result)).toBe(0);
  return JSON.parse(result.stdout) as Record<string, unknown>;
}

describe('installable packages (issue 16)', () => {
  it('packs every public package with built code, types, a license and real dependency versions', async () => {
    expect(packages.map((p) => p.name)).toEqual(
      expect.arrayContaining(['@peerlb/client', '@peerlb/rate-limit', '@peerlb/registration', '@peerlb/registry']),
    );
    const versions = new Map(packages.map((p) => [p.name, p.version]));
    for (const pkg of packages) {
      const tarball = tarballs.get(pkg.name)!;
      const listing = await run('tar', ['-tzf', tarball], { cwd: work, timeoutMs: 30_000 });
      const files = listing.stdout.split('\n').filter(Boolean);
      expect(files, pkg.name).toEqual(
        expect.arrayContaining(['package/package.json', 'package/README.md', 'package/LICENSE', 'package/dist/index.js', 'package/dist/index.d.ts']),
      );
      expect(files.filter((f) => f.includes('tsbuildinfo') || f.includes('/test/')), pkg.name).toEqual([]);

      const manifest = await tarballManifest(tarball);
      expect(manifest, pkg.name).toMatchObject({ license: 'MIT', engines: { node: expect.any(String) } });
      expect(manifest.repository, pkg.name).toMatchObject({ type: 'git', directory: expect.any(String) });
      const exportsMap = manifest.exports as Record<string, { types?: string; default?: string }>;
      for (const [entry, target] of Object.entries(exportsMap)) {
        expect(target.types, `${pkg.name} exports ${entry}`).toMatch(/\.d\.ts$/);
        expect(files, `${pkg.name} exports ${entry}`).toContain(`package/${target.types!.replace(/^\.\//, '')}`);
        expect(files, `${pkg.name} exports ${entry}`).toContain(`package/${target.default!.replace(/^\.\//, '')}`);
      }
      for (const field of ['dependencies', 'peerDependencies', 'optionalDependencies'] as const) {
        for (const [dep, range] of Object.entries((manifest[field] ?? {}) as Record<string, string>)) {
          expect(range, `${pkg.name} ${field}.${dep}`).not.toMatch(/^workspace:/);
          // Sibling packages are released together: the range names the version packed beside it.
          if (versions.has(dep)) expect(range, `${pkg.name} ${field}.${dep}`).toBe(versions.get(dep));
        }
      }
    }
  });

  it(
    'installs from the packed tarballs alone (the README Install route) and runs',
    async () => {
      // Before anything is published: @peerlb/* can come only from the tarballs.
      const dir = await emptyProject('from-tarballs');
      await npmInstall(dir, [...tarballs.values()]);
      await runSmoke(dir);
    },
    NPM_TIMEOUT_MS + PROGRAM_TIMEOUT_MS,
  );

  describe('published to a local registry', () => {
    let app: string;

    beforeAll(async () => {
      for (const [name, tarball] of tarballs) {
        const result = await run('npm', ['publish', tarball, '--registry', registry!.url], {
          cwd: work,
          env: npmEnv(registry!.npmrc),
          timeoutMs: 120_000,
        });
        expect(result.code, `${describeRun(`npm publish ${name}`, result)}\n--- registry\n${registry!.log()}`).toBe(0);
      }
      app = await emptyProject('app');
      await npmInstall(app, ['@peerlb/client', '@peerlb/registration']);
    }, 120_000 + NPM_TIMEOUT_MS);

    it('npm i @peerlb/client @peerlb/registration: two instances, 20 balanced calls, clean exit', async () => {
      const installed = JSON.parse(await readFile(join(app, 'package.json'), 'utf8')) as { dependencies: Record<string, string> };
      expect(Object.keys(installed.dependencies).sort()).toEqual(['@peerlb/client', '@peerlb/registration']);
      const lock = JSON.parse(await readFile(join(app, 'package-lock.json'), 'utf8')) as {
        packages: Record<string, { resolved?: string }>;
      };
      // Every package, ours and third-party, came through the local registry.
      const resolved = Object.entries(lock.packages).filter(([path]) => path !== '');
      expect(resolved.length).toBeGreaterThan(4);
      for (const [path, entry] of resolved) expect(entry.resolved ?? registry!.url, path).toMatch(/^http:\/\/127\.0\.0\.1:/);
      // OpenTelemetry is an optional peer: not installed, not needed.
      expect(Object.keys(lock.packages).filter((path) => path.includes('@opentelemetry/'))).toEqual([]);
      await runSmoke(app);
    }, PROGRAM_TIMEOUT_MS);

    it(
      'a strict TypeScript program type-checks against the installed types (skipLibCheck off)',
      async () => {
        await writeFile(
          join(app, 'typed.ts'),
          [
            "import { createClient, p2c, type BalancedResponse, type ClientStats } from '@peerlb/client';",
            "import { startService, type StartedService } from '@peerlb/registration';",
            "import { MemoryRegistry, type ServiceInstance } from '@peerlb/registry';",
            "import { CallerRateLimiter } from '@peerlb/rate-limit';",
            '',
            'export async function main(): Promise<number> {',
            '  const registry = new MemoryRegistry();',
            '  const service: StartedService = await startService({ service: "typed", registry, handler: (_req, res) => res.end("ok"), handleSignals: false });',
            '  const client = createClient({ registry, balancer: p2c() });',
            '  const res: BalancedResponse = await client.request({ service: "typed", path: "/" });',
            '  const stats: ClientStats = client.stats();',
            '  const first: ServiceInstance | undefined = (await registry.list("typed"))[0];',
            '  const ok: boolean = new CallerRateLimiter({ ratePerSec: 1 }).take("a", 0).allowed;',
            '  await res.body.dump();',
            '  await client.close();',
            '  await service.close();',
            '  return res.statusCode + Object.keys(stats.services).length + (first ? 1 : 0) + (ok ? 1 : 0);',
            '}',
            '',
          ].join('\n'),
        );
        await writeFile(
          join(app, 'tsconfig.json'),
          JSON.stringify({
            compilerOptions: {
              strict: true,
              noEmit: true,
              skipLibCheck: false,
              target: 'ES2022',
              module: 'NodeNext',
              moduleResolution: 'NodeNext',
              // Node's types from this repository: the project itself installs only peerlb.
              typeRoots: [join(REPO, 'node_modules/@types')],
              types: ['node'],
            },
            files: ['typed.ts'],
          }),
        );
        const tsc = join(REPO, 'node_modules/typescript/bin/tsc');
        const result = await run(process.execPath, [tsc, '-p', 'tsconfig.json'], { cwd: app, timeoutMs: 120_000 });
        expect(result.code, describeRun('tsc in the installed project', result)).toBe(0);
      },
      120_000,
    );

    it(
      "the package READMEs' quick starts run as written, the client's calling the registration's service",
      async () => {
        const others = packages.filter((p) => p.name !== '@peerlb/client' && p.name !== '@peerlb/registration');
        await npmInstall(app, others.map((p) => p.name));
        const code = new Map<string, string>();
        for (const pkg of packages) {
          const sample = quickStartCode(await readFile(join(pkg.dir, 'README.md'), 'utf8'));
          if (sample !== undefined) code.set(pkg.name, sample);
        }
        for (const name of ['@peerlb/client', '@peerlb/registration', '@peerlb/registry', '@peerlb/rate-limit']) {
          expect(code.has(name), `${name} README has a quick start`).toBe(true);
        }
        for (const [name, sample] of code) await writeFile(join(app, `${fileName(name)}.mjs`), sample);

        // The registration quick start is a service: it runs until SIGTERM.
        const server = spawn(process.execPath, [`${fileName('@peerlb/registration')}.mjs`], {
          cwd: app,
          env: projectEnv(app),
          stdio: ['ignore', 'pipe', 'pipe'],
        });
        let serverOutput = '';
        server.stderr.on('data', (chunk: Buffer) => {
          serverOutput += chunk.toString();
        });
        const serverExit = new Promise<number | null>((resolve) => server.once('exit', (code) => resolve(code)));
        try {
          await new Promise<void>((resolve, reject) => {
            const timer = setTimeout(() => reject(new Error(`the orders service did not start\n${serverOutput}`)), 30_000);
            createInterface({ input: server.stdout }).on('line', (line) => {
              serverOutput += `${line}\n`;
              if (/ serving at http:\/\/127\.0\.0\.1:\d+$/.test(line)) {
                clearTimeout(timer);
                resolve();
              }
            });
            server.once('exit', () => reject(new Error(`the orders service exited\n${serverOutput}`)));
          });

          const client = await run(process.execPath, [`${fileName('@peerlb/client')}.mjs`], {
            cwd: app,
            env: projectEnv(app),
            timeoutMs: PROGRAM_TIMEOUT_MS,
          });
          expect(client.code, describeRun('the client quick start', client)).toBe(0);
          expect(client.stdout).toMatch(/^200 orders-\S+ \{ path: '\/v1\/orders\/42', pid: \d+ \}/);
        } finally {
          server.kill('SIGTERM');
        }
        expect(await serverExit, serverOutput).toBe(0);

        // A package with a command (the CLI) installs it on the project's PATH, runnable as is.
        for (const pkg of packages) {
          const manifest = JSON.parse(await readFile(join(app, 'node_modules', pkg.name, 'package.json'), 'utf8')) as {
            bin?: string | Record<string, string>;
          };
          const bins = typeof manifest.bin === 'string' ? [pkg.name.replace(/^@[^/]+\//, '')] : Object.keys(manifest.bin ?? {});
          for (const bin of bins) {
            const result = await run(join(app, 'node_modules', '.bin', bin), ['--help'], {
              cwd: app,
              env: projectEnv(app),
              timeoutMs: PROGRAM_TIMEOUT_MS,
            });
            expect(result.code, describeRun(`${bin} --help`, result)).toBe(0);
          }
        }

        for (const name of code.keys()) {
          if (name === '@peerlb/client' || name === '@peerlb/registration') continue;
          const result = await run(process.execPath, [`${fileName(name)}.mjs`], {
            cwd: app,
            env: projectEnv(app),
            timeoutMs: PROGRAM_TIMEOUT_MS,
          });
          expect(result.code, describeRun(`the ${name} quick start`, result)).toBe(0);
        }
      },
      NPM_TIMEOUT_MS + 3 * PROGRAM_TIMEOUT_MS,
    );
  });
});

function fileName(pkg: string): string {
  return `quick-start-${pkg.replace(/^@peerlb\//, '')}`;
}
