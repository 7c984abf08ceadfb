/**
 * Idle cost of a local-registry watcher over a large, unchanging registry directory (issue 12
 * item 2). For each size: N valid, healthy record files (one hour TTL, so nothing lapses during
 * the run; all but 3 of other services), one `LocalRegistry` watching one service with the
 * default 500 ms rescan, then `process.cpuUsage()` over a quiet window: the CPU the watcher alone
 * spends while nothing changes. The default 20 s window holds two of the cache's full
 * verification passes (every 10 s), so their cost is in the figure. Also times `list()` cold
 * (first read) and warm.
 *
 *   tsc -p bench && node bench/dist/bench/src/registry-idle.js [--files 1000,10000] [--seconds 20]
 *
 * Each size runs in a fresh child process, so one size's heap and caches do not bill the next.
 */
import { fork } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { LocalRegistry, silentLogger } from '@peerlb/registry';

interface Result {
  files: number;
  seconds: number;
  cpuPercentOfCore: number;
  listColdMs: number;
  listWarmMs: number;
  watchedInstances: number;
}

function writeRecords(dir: string, count: number): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700);
  const now = Date.now();
  for (let i = 0; i < count; i++) {
    const service = i < 3 ? 'watched' : `other-${i % 50}`;
    const id = `${service}-${i}`;
    const record = {
      peerlb: 1,
      instance: { id, service, address: '127.0.0.1', port: 1024 + (i % 60_000), tags: ['bench'], meta: { n: String(i) } },
      owner: { pid: process.pid, hostname: hostname(), registry: 'bench' },
      checks: { ttl: { status: 'passing', output: 'healthy', since: now, expiresAt: now + 3_600_000, ttlMs: 3_600_000 } },
      registeredAt: now,
    };
    writeFileSync(join(dir, `${encodeURIComponent(id)}.json`), `${JSON.stringify(record)}\n`, { mode: 0o600 });
  }
}

async function measure(files: number, seconds: number): Promise<Result> {
  const parent = mkdtempSync(join(tmpdir(), 'peerlb-bench-idle-'));
  const dir = join(parent, 'registry');
  try {
    writeRecords(dir, files);
    const registry = new LocalRegistry({ dir, logger: silentLogger });
    let t = performance.now();
    await registry.list('watched');
    const listColdMs = performance.now() - t;
    t = performance.now();
    await registry.list('watched');
    const listWarmMs = performance.now() - t;
    let watchedInstances = 0;
    const first = new Promise<void>((resolve) => {
      registry.watch('watched', (update) => {
        if (update.ok) watchedInstances = update.instances.length;
        resolve();
      });
    });
    await first;
    // Let start-up work (first scans, JIT) settle before the quiet window.
    await new Promise((r) => setTimeout(r, 2_000));
    const cpu0 = process.cpuUsage();
    const wall0 = performance.now();
    await new Promise((r) => setTimeout(r, seconds * 1_000));
    const cpu = process.cpuUsage(cpu0);
    const wallMs = performance.now() - wall0;
    await registry.close();
    return {
      files,
      seconds,
      cpuPercentOfCore: ((cpu.user + cpu.system) / 1_000 / wallMs) * 100,
      listColdMs,
      listWarmMs,
      watchedInstances,
    };
  } finally {
    rmSync(parent, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { files: { type: 'string', default: '1000,10000' }, seconds: { type: 'string', default: '20' }, child: { type: 'string' } },
  });
  const seconds = Number(values.seconds);
  if (values.child !== undefined) {
    // The registry's timers are unref'd (as they should be): hold the process open meanwhile.
    const keepAlive = setInterval(() => {}, 60_000);
    const result = await measure(Number(values.child), seconds);
    clearInterval(keepAlive);
    process.send?.(result);
    return;
  }
  const sizes = values.files.split(',').map(Number);
  console.log(`local registry watcher, idle: ${seconds} s quiet window per size, default rescan (500 ms)`);
  console.log('| files | watcher CPU, % of one core | list() cold | list() warm |');
  console.log('| ---: | ---: | ---: | ---: |');
  for (const files of sizes) {
    const result = await new Promise<Result>((resolve, reject) => {
      const child = fork(fileURLToPath(import.meta.url), ['--child', String(files), '--seconds', String(seconds)], { execArgv: [] });
      child.once('message', (m) => resolve(m as Result));
      child.once('exit', (code) => reject(new Error(`child for ${files} files exited with ${code}`)));
    });
    console.log(
      `| ${files.toLocaleString('en')} | ${result.cpuPercentOfCore.toFixed(1)} % | ${result.listColdMs.toFixed(0)} ms | ${result.listWarmMs.toFixed(0)} ms |`,
    );
  }
}

await main();
