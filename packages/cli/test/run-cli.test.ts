import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../src/index.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'peerlb-cli-unit-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function run(args: string[], signal = new AbortController().signal) {
  let stdout = '';
  let stderr = '';
  const code = await runCli(args, {
    stdout: { write: (t: string) => (stdout += t) },
    stderr: { write: (t: string) => (stderr += t) },
    env: { PEERLB_REGISTRY_DIR: join(dir, 'registry') },
    signal,
  });
  return { code, stdout, stderr };
}

describe('runCli on an empty local registry', () => {
  it('services: none, exit 0', async () => {
    expect(await run(['services'])).toEqual({ code: 0, stdout: `no services in local (${join(dir, 'registry')})\n`, stderr: '' });
  });

  it('instances of an unknown service: exit 4; with --json the empty list', async () => {
    const text = await run(['instances', 'catalog']);
    expect(text.code).toBe(4);
    expect(text.stderr).toBe(`peerlb: service "catalog" has no healthy instance in local (${join(dir, 'registry')})\n`);
    const json = await run(['instances', 'catalog', '--json']);
    expect(json.code).toBe(4);
    expect(JSON.parse(json.stdout)).toMatchObject({ service: 'catalog', instances: [] });
  });

  it('Ctrl-C before the answer: exit 130', async () => {
    const stop = new AbortController();
    stop.abort();
    expect(await run(['services'], stop.signal)).toEqual({ code: 130, stdout: '', stderr: 'peerlb: interrupted\n' });
    const json = await run(['call', 'catalog', '/', '--json'], stop.signal);
    expect([json.code, JSON.parse(json.stdout).error.code]).toEqual([130, 'PEERLB_CLI_INTERRUPTED']);
  });
});
