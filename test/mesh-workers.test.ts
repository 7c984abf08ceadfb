import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { ConsulRegistry, silentLogger } from '@peerlb/registry';
import { startConsulDouble, type ConsulDouble } from './support/consul-double.js';
import { waitFor } from './support/wait.js';

const CLI = fileURLToPath(new URL('../examples/mesh/dist/cli.js', import.meta.url));

let consul: ConsulDouble | undefined;
afterEach(async () => {
  await consul?.close();
  consul = undefined;
});

describe('pnpm mesh --workers (issue 14)', () => {
  it('registers every worker of every backend as its own instance, and stops them all cleanly', async () => {
    consul = await startConsulDouble({ minCheckIntervalMs: 100 });
    const registry = new ConsulRegistry({ address: consul.url, logger: silentLogger });
    const child = spawn(process.execPath, [CLI, '--workers', '2', '--instances', '1', '--port', '0', '--ports', '0', '--no-web'], {
      env: { ...process.env, CONSUL_HTTP_ADDR: consul.url },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (c: Buffer) => (output += c.toString()));
    child.stderr.on('data', (c: Buffer) => (output += c.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    try {
      await waitFor(
        async () =>
          (await registry.list('catalog')).length === 2 &&
          (await registry.list('pricing')).length === 2 &&
          (await registry.list('gateway')).length === 1,
        45_000,
        'two workers of catalog and pricing, and the gateway, registered',
        () => output.slice(-2000),
      );
      const workers = await registry.list('catalog');
      expect(workers.map((w) => w.meta.worker).sort()).toEqual(['0', '1']);
      expect(new Set(workers.map((w) => w.port)).size).toBe(2);
      expect(new Set(workers.map((w) => w.meta.pid)).size).toBe(2);
    } finally {
      child.kill('SIGINT');
    }
    const code = await exited;
    expect(code, output.slice(-3000)).toBe(0);
    expect(output).toMatch(/the registry lists none of them/);
    expect(await registry.list('catalog')).toHaveLength(0);
    await registry.close();
  });
});
