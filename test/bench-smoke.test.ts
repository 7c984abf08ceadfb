import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

// The benchmark's smoke run (`pnpm bench:smoke`): every scenario with tiny counts, in child
// processes. Checks that it completes and writes its output; asserts nothing about speed.

const root = fileURLToPath(new URL('..', import.meta.url));
const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
const out = mkdtempSync(join(tmpdir(), 'peerlb-bench-smoke-'));

afterAll(() => rmSync(out, { recursive: true, force: true }));

function runSmoke(timeoutMs: number): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    // Its own process group, so a hung run can be stopped with everything it started.
    const child = spawn(process.execPath, [join(root, 'bench/dist/bench/src/run.js'), '--smoke', '--out', out], {
      cwd: root,
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const timer = setTimeout(() => {
      process.kill(-child.pid!, 'SIGKILL');
      reject(new Error(`bench smoke run did not finish within ${timeoutMs} ms:\n${output.slice(-3000)}`));
    }, timeoutMs);
    child.on('error', reject);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, output });
    });
  });
}

describe('pnpm bench:smoke', () => {
  it(
    'runs every scenario and writes latest.json and latest.md',
    async () => {
      const build = spawnSync(process.execPath, [tsc, '-p', join(root, 'bench')], { encoding: 'utf8' });
      expect(build.stdout + build.stderr).toBe('');
      expect(build.status).toBe(0);

      const { code, output } = await runSmoke(110_000);
      expect(code, output.slice(-3000)).toBe(0);

      const report = JSON.parse(readFileSync(join(out, 'latest.json'), 'utf8'));
      expect(report.smoke).toBe(true);
      expect(report.failures).toEqual({});
      expect(Object.keys(report.scenarios).sort()).toEqual(
        ['callers', 'deadline', 'degraded', 'discovery', 'failover', 'hedging', 'load', 'scale', 'throughput'].sort(),
      );
      const ids = new Set(report.summary.map((row: { id: string }) => row.id));
      for (const id of ['1', '2', '3', '4', '5', '6', '7', '8', 'ref', '14.1', '14.2', '14.3', '15.1', '15.2', '15.3']) {
        expect(ids, `scenario ${id}`).toContain(id);
      }
      for (const row of report.summary) expect(['PASS', 'MISS', 'INFO', 'SKIP']).toContain(row.status);
      // No nginx in smoke runs: the proxy row says so instead of failing.
      const proxy = report.summary.find((row: { id: string }) => row.id === '2');
      expect(proxy.status).toBe('SKIP');
      expect(proxy.note).toMatch(/smoke/);
      expect(report.machine.cores).toBeGreaterThan(0);
      expect(report.machine.node).toBe(process.version);

      expect(existsSync(join(out, 'latest.md'))).toBe(true);
      const markdown = readFileSync(join(out, 'latest.md'), 'utf8');
      expect(markdown).toContain('## Summary');
      expect(markdown).toContain('Smoke run');
    },
    150_000,
  );
});
