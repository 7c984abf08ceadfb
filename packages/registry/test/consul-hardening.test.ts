import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { ConsulRegistry, type ConsulRegistryOptions, type RegistryLogger, type WatchUpdate } from '../src/index.js';
import { healthEntry, rejection, startConsulStub, waitUntil, type ConsulStub, type StubHandler } from './consul-stub.js';

// What a hostile or sloppy agent (or another tool's data) must not do to the Consul adapter:
// leak the token, flood the log, blow up memory, or collapse two instances into one peer.

const TOKEN = '8f3c2a9e-51d7-4b0e-9c6a-2e7f1d4b8a03';
const stubs: ConsulStub[] = [];
const registries: ConsulRegistry[] = [];

afterEach(async () => {
  await Promise.all(registries.splice(0).map((r) => r.close()));
  await Promise.all(stubs.splice(0).map((s) => s.close()));
});

async function setup(handler: StubHandler, options: ConsulRegistryOptions = {}) {
  const stub = await startConsulStub(handler);
  stubs.push(stub);
  const lines: string[] = [];
  const logger: RegistryLogger = { warn: (message, details) => lines.push(`${message} ${JSON.stringify(details ?? {})}`) };
  const registry = new ConsulRegistry({
    address: stub.url,
    token: TOKEN,
    logger,
    env: {},
    confirmRegistration: false,
    waitMs: 1_000,
    minWatchIntervalMs: 0,
    backoff: { minMs: 5, maxMs: 10 },
    ...options,
  });
  registries.push(registry);
  return { stub, registry, lines };
}

/** Any 8 consecutive characters of the token: more than that is a usable leak. */
function leaksToken(text: string): boolean {
  for (let i = 0; i + 8 <= TOKEN.length; i++) if (text.includes(TOKEN.slice(i, i + 8))) return true;
  return false;
}


describe('regression (issue 12 item 9): the ACL token never reaches an error message or the log', () => {
  it('an error body echoing the token at any position, plain or JSON-escaped, is scrubbed before it is cut', async () => {
    let position = 0;
    let body = '';
    const { registry, lines } = await setup(() => ({ status: 500, text: body }));
    for (position = 0; position <= 420; position += 1) {
      body = `${'x'.repeat(position)}${TOKEN} rest of the agent's explanation`;
      const err = await rejection(registry.list('web'));
      expect(err.message, `token at ${position}`).toContain('HTTP 500');
      expect(leaksToken(err.message), `token at ${position}: ${err.message}`).toBe(false);
      expect(leaksToken(JSON.stringify(err)), `token at ${position}`).toBe(false);
    }
    expect(lines.some(leaksToken)).toBe(false);
  });

  it('a body that is not JSON is reported without quoting it, wherever the token sits in it', async () => {
    let body = '';
    const { registry, lines } = await setup(() => ({ headers: { 'content-type': 'application/json', 'x-consul-index': '3' }, text: body }));
    for (let position = 0; position <= 300; position += 7) {
      body = `[{"Node": ${'y'.repeat(position)}${TOKEN}`;
      const err = await rejection(registry.list('web'));
      expect(err.message).toMatch(/not valid JSON/);
      expect(leaksToken(err.message), `token at ${position}: ${err.message}`).toBe(false);
    }
    // The watch's log line carries the same message.
    const updates: WatchUpdate[] = [];
    const watch = registry.watch('web', (u) => updates.push(u));
    await waitUntil(() => updates.length >= 2, 10_000, 'failed watch reads');
    watch.close();
    expect(lines.length).toBeGreaterThan(0);
    expect(lines.some(leaksToken)).toBe(false);
  });
});

describe('regression (issue 12 item 10): invalid entries are reported once per distinct entry, not once per read', () => {
  it('three bad entries read 30 times give 3 warnings', async () => {
    let index = 10;
    const bad = [
      healthEntry('web', 'web-port-0', 0),
      healthEntry('web', 'web-url', 80, { address: 'http://evil.example/' }),
      healthEntry('web', '.dotfile', 80),
    ];
    const good = healthEntry('web', 'web-1', 8080);
    const { registry, lines, stub } = await setup(() => ({ headers: { 'x-consul-index': String(index++) }, json: [good, ...bad] }));
    const updates: WatchUpdate[] = [];
    const watch = registry.watch('web', (u) => updates.push(u));
    await waitUntil(() => stub.matching('/v1/health/service/').length >= 30, 20_000, '30 reads');
    watch.close();
    expect(updates.filter((u) => u.ok)).toHaveLength(1);
    expect(lines.filter((l) => l.includes('dropped'))).toHaveLength(3);
  });

  it('100,000 bad entries give at most 11 lines on the first read and none on the next ones', async () => {
    let index = 10;
    const entries = [healthEntry('web', 'web-1', 8080)];
    for (let i = 0; i < 100_000; i++) entries.push(healthEntry('web', `bad-${i}`, 0));
    const { registry, lines, stub } = await setup(() => ({ headers: { 'x-consul-index': String(index++) }, json: entries }), {
      maxResponseBytes: 256 * 1024 * 1024,
    });
    const updates: WatchUpdate[] = [];
    const watch = registry.watch('web', (u) => updates.push(u));
    await waitUntil(() => stub.matching('/v1/health/service/').length >= 3, 30_000, '3 reads');
    watch.close();
    expect(updates[0]).toMatchObject({ ok: true });
    expect(lines.length).toBeLessThanOrEqual(11);
    expect(lines.at(-1)).toMatch(/99990 more invalid entries/);
  }, 60_000);

  it('an answer of well-formed entries that are all unusable is an empty service, not a watch stuck in errors', async () => {
    let index = 10;
    const { registry } = await setup(() => ({ headers: { 'x-consul-index': String(index++) }, json: [healthEntry('web', 'web-port-0', 0)] }));
    expect(await registry.list('web')).toEqual([]);
  });
});

describe('answers over maxResponseBytes', () => {
  it('fail that read, and a watch keeps its last good list (an error update, never an empty list)', async () => {
    let big = false;
    let index = 10;
    const entries = (n: number) => Array.from({ length: n }, (_, i) => healthEntry('web', `web-${i}`, 8000 + i));
    const { registry } = await setup(() => ({ headers: { 'x-consul-index': String(index++) }, json: big ? entries(2_000) : entries(2) }), {
      maxResponseBytes: 64 * 1024,
    });
    const updates: WatchUpdate[] = [];
    const watch = registry.watch('web', (u) => updates.push(u));
    await waitUntil(() => updates.some((u) => u.ok), 5_000, 'the first list');
    big = true;
    await waitUntil(() => updates.some((u) => !u.ok), 5_000, 'the failed read');
    watch.close();
    const failure = updates.find((u) => !u.ok)!;
    expect(failure.ok === false && failure.error.message).toMatch(/larger than maxResponseBytes \(65536 bytes\)/);
    expect(updates.filter((u) => u.ok)).toHaveLength(1);
    await expect(registry.list('web')).rejects.toMatchObject({ code: 'PEERLB_REGISTRY_UNAVAILABLE' });
  });

  it('counts a chunked answer (no Content-Length) as it arrives and stops reading it', async () => {
    let written = 0;
    const server = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json', 'x-consul-index': '7' });
      res.write('[');
      const chunk = `${JSON.stringify(healthEntry('web', 'web-1', 8080))},`.repeat(100);
      const pump = () => {
        // Far past the cap, unless the client stopped reading (the socket closes and writes fail).
        while (written < 50 * 1024 * 1024 && !res.destroyed) {
          written += chunk.length;
          if (!res.write(chunk)) return void res.once('drain', pump);
        }
        res.end('{}]');
      };
      pump();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const registry = new ConsulRegistry({
        address: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
        maxResponseBytes: 256 * 1024,
        logger: { warn() {} },
        env: {},
      });
      registries.push(registry);
      const err = await rejection(registry.list('web'));
      expect(err.message).toMatch(/larger than maxResponseBytes \(262144 bytes\)/);
      // The server was cut off long before its 50 MB.
      expect(written).toBeLessThan(20 * 1024 * 1024);
    } finally {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it('is validated when the registry is built', () => {
    expect(() => new ConsulRegistry({ maxResponseBytes: 10, env: {} })).toThrow(expect.objectContaining({ field: 'maxResponseBytes' }));
  });
});

describe('the same Service.ID on several nodes', () => {
  it('becomes id@node on each, so callers keep one peer per instance', async () => {
    const onNode = (node: string, port: number) => {
      const entry = healthEntry('web', 'web', port) as { Node: { Node: string } };
      entry.Node.Node = node;
      return entry;
    };
    const { registry } = await setup(() => ({ headers: { 'x-consul-index': '4' }, json: [onNode('client-1', 8001), onNode('client-2', 8002), healthEntry('web', 'web-9', 8009)] }));
    const list = await registry.list('web');
    expect(list.map((i) => [i.id, i.port])).toEqual([
      ['web-9', 8009],
      ['web@client-1', 8001],
      ['web@client-2', 8002],
    ]);
  });
});

describe('an HTTP check on a loopback address registered with an agent on another host', () => {
  it('warns once that the check can never pass', async () => {
    const lines: string[] = [];
    const registry = new ConsulRegistry({ address: 'http://192.0.2.10:8500', logger: { warn: (m) => lines.push(m) }, env: {} });
    registries.push(registry);
    // An aborted signal stops each call before it connects: only the warning is under test.
    const signal = AbortSignal.abort();
    const inst = { id: 'web-1', service: 'web', address: '127.0.0.1', port: 8080 };
    for (let i = 0; i < 3; i++) {
      await expect(registry.register(inst, { http: { intervalMs: 1_000 } }, { signal })).rejects.toMatchObject({ code: 'PEERLB_ABORTED' });
    }
    expect(lines.filter((l) => l.includes('loopback'))).toHaveLength(1);
    expect(lines[0]).toMatch(/runs the HTTP check from its own host/);
    // A routable address, or a TTL-only check, says nothing.
    await expect(registry.register({ ...inst, id: 'web-2', address: '192.0.2.20' }, { http: { intervalMs: 1_000 } }, { signal })).rejects.toThrow();
    await expect(registry.register({ ...inst, id: 'web-3' }, { ttlMs: 1_000 }, { signal })).rejects.toThrow();
    expect(lines).toHaveLength(1);
  });
});
