// Issue 16: every mesh instance serves Prometheus metrics at GET /metrics (OpenTelemetry's
// Prometheus exporter), with the client's and the serving side's instruments, as the mesh README
// shows how to scrape them. The mesh runs as a user runs it (the built supervisor, real processes).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startMesh, type RunningMesh } from './support/mesh-process.js';

let mesh: RunningMesh | undefined;

beforeAll(async () => {
  const env = { ...process.env };
  delete env.CONSUL_HTTP_ADDR;
  delete env.PEERLB_REGISTRY_DIR;
  mesh = await startMesh({ instances: 1, web: false, env });
}, 60_000);

afterAll(async () => {
  await mesh?.stop();
});

/** Prometheus text lines of `name` (a sample's name up to its labels). */
function samples(text: string, name: string): string[] {
  return text.split('\n').filter((line) => line.startsWith(`${name}{`) || line.startsWith(`${name} `));
}

describe('mesh GET /metrics (issue 16)', () => {
  it('the gateway exposes its calls, its peers by state and its own answers in the Prometheus format', async () => {
    const gateway = mesh!.gatewayUrl;
    for (let i = 0; i < 5; i++) {
      const res = await fetch(`${gateway}/api/products/tea-001`, { signal: AbortSignal.timeout(10_000) });
      expect(res.status).toBe(200);
      await res.arrayBuffer();
    }
    const res = await fetch(`${gateway}/metrics`, { signal: AbortSignal.timeout(10_000) });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain/);
    const text = await res.text();

    const attempts = samples(text, 'peerlb_client_attempts_total').filter((l) => l.includes('peerlb_outcome="success"'));
    const catalog = attempts.find((l) => l.includes('peerlb_service="catalog"'));
    expect(catalog, text).toBeDefined();
    expect(Number(catalog!.split(' ').at(-1))).toBeGreaterThanOrEqual(5);
    expect(samples(text, 'peerlb_client_peers')).toContainEqual(
      expect.stringMatching(/^peerlb_client_peers\{peerlb_service="catalog",peerlb_peer_state="healthy",.*\} 1$/),
    );
    expect(samples(text, 'http_client_request_duration_count')).toContainEqual(
      expect.stringMatching(/http_request_method="GET",server_address="127\.0\.0\.1",server_port="\d+",http_response_status_code="200"/),
    );
    const served = samples(text, 'http_server_request_duration_count').find((l) => l.includes('http_response_status_code="200"'));
    expect(served, text).toBeDefined();
    expect(Number(served!.split(' ').at(-1))).toBeGreaterThanOrEqual(5);
  });
});
