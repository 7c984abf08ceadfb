import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LocalRegistry, silentLogger } from '@peerlb/registry';
import { balancedRequest, closeDefaultClient, getDefaultClient } from '../src/index.js';
import { startPeer, type TestPeer } from './support/client-testkit.js';

// The default client reads the environment: point it at a private local registry directory.
let dir: string;
let peer: TestPeer;
let registry: LocalRegistry;
const saved = { dir: process.env.PEERLB_REGISTRY_DIR, consul: process.env.CONSUL_HTTP_ADDR };

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'peerlb-default-client-'));
  process.env.PEERLB_REGISTRY_DIR = dir;
  delete process.env.CONSUL_HTTP_ADDR;
  peer = await startPeer('greeter-1', (_req, res) => res.end('hello'));
  registry = new LocalRegistry({ dir, logger: silentLogger });
  await registry.register({ id: 'greeter-1', service: 'greeter', address: '127.0.0.1', port: peer.port }, { ttlMs: 60_000 });
  await registry.heartbeat('greeter-1');
});

afterAll(async () => {
  await closeDefaultClient();
  await registry.close();
  await peer.close();
  await rm(dir, { recursive: true, force: true });
  if (saved.dir === undefined) delete process.env.PEERLB_REGISTRY_DIR;
  else process.env.PEERLB_REGISTRY_DIR = saved.dir;
  if (saved.consul !== undefined) process.env.CONSUL_HTTP_ADDR = saved.consul;
});

describe('balancedRequest', () => {
  it('sends through a default client built from the environment', async () => {
    const res = await balancedRequest({ service: 'greeter', path: '/hi', timeoutMs: 5000 });
    expect(res.statusCode).toBe(200);
    expect(await res.body.text()).toBe('hello');
    expect(res.peer).toEqual({ id: 'greeter-1', address: '127.0.0.1', port: peer.port });
    // One client, reused.
    expect(getDefaultClient()).toBe(getDefaultClient());
    expect(getDefaultClient().stats().services.greeter!.requests).toBe(1);
  });

  it('closeDefaultClient closes it; the next call builds a new one', async () => {
    const first = getDefaultClient();
    await closeDefaultClient();
    expect(first.closed).toBe(true);
    const res = await balancedRequest({ service: 'greeter', path: '/', timeoutMs: 5000 });
    await res.body.dump();
    expect(getDefaultClient()).not.toBe(first);
    await closeDefaultClient();
    await closeDefaultClient();
  });

  it('rejects invalid options like client.request', async () => {
    await expect(balancedRequest({ service: 'greeter', path: '/', headers: { a: 'x\r\ny' } })).rejects.toMatchObject({
      code: 'PEERLB_INVALID_OPTIONS',
      field: 'headers.a',
    });
  });
});
