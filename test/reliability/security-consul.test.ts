import { randomUUID } from 'node:crypto';
import { copyFile, mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient, type Client } from '@peerlb/client';
import {
  ConsulRegistry,
  PeerlbError,
  registryFromEnv,
  RegistryAuthError,
  RegistryUnavailableError,
  type Registry,
  type RegistryLogger,
  type WatchUpdate,
} from '@peerlb/registry';
import { startConsulDouble, type ConsulDouble } from '../support/consul-double.js';
import { Instance, killAll, sleep, waitFor } from './support/processes.js';
import { startGarblingProxy, startPeer, type GarblingProxy, type Peer } from './support/servers.js';
import { hasOpenssl, makePki, startTlsTerminator, type Issued, type Pki, type TlsTerminator } from './support/tls.js';

// The Consul side of security: the ACL token goes with every call and nowhere else (no log line,
// no error, no output), and the agent can be reached over HTTPS with a CA of one's own, a client
// certificate (mutual TLS), a CA directory, another server name, or verification off, all set the
// way Consul's own CLI reads them from the environment.

const TOKEN = `peerlb-acl-${randomUUID()}`;

/** Everything that was logged, as text, so a secret can be searched for in it. */
class CapturingLogger implements RegistryLogger {
  readonly lines: string[] = [];
  warn(message: string, details?: Record<string, unknown>): void {
    this.lines.push(`${message} ${details === undefined ? '' : inspect(details, { depth: 10 })}`);
  }
}

/** An error as a person debugging would see it: message, stack, own fields and the whole cause chain. */
function shown(err: unknown): string {
  return `${String(err)}\n${inspect(err, { depth: 10, showHidden: true })}`;
}

describe('Consul ACL token', () => {
  let double: ConsulDouble;
  let proxy: GarblingProxy;
  let peer: Peer;
  const registries: Registry[] = [];
  const clients: Client[] = [];
  const logger = new CapturingLogger();
  const errors: unknown[] = [];

  beforeAll(async () => {
    double = await startConsulDouble({ token: TOKEN, minCheckIntervalMs: 100, reapIntervalMs: 100 });
    proxy = await startGarblingProxy(double.port);
    peer = await startPeer();
  });
  afterAll(async () => {
    await Promise.all(clients.map((c) => c.close()));
    await Promise.all(registries.map((r) => r.close()));
    await killAll();
    await peer?.close();
    await proxy?.close();
    await double?.close();
  });

  function registry(options: ConstructorParameters<typeof ConsulRegistry>[0]): ConsulRegistry {
    const r = new ConsulRegistry({ waitMs: 2_000, backoff: { minMs: 50, maxMs: 300 }, logger, env: {}, ...options });
    registries.push(r);
    return r;
  }

  it('is sent on every call, through an outage and an agent restart, and appears in no log, error or output', async () => {
    const service = 'secure-token';
    // An instance process finds Consul and its token in the environment, like a deployed service.
    const instance = new Instance(
      { service, registry: { kind: 'env' }, ledger: join(tmpdir(), `peerlb-unused-${randomUUID()}`), check: { ttlMs: 1_000 } },
      { CONSUL_HTTP_ADDR: proxy.url, CONSUL_HTTP_TOKEN: TOKEN },
    );
    const { id } = await instance.ready;

    const clientRegistry = registry({ address: proxy.url, token: TOKEN });
    const client = createClient({ registry: clientRegistry, logger, timeoutMs: 10_000 });
    clients.push(client);
    const updates: WatchUpdate[] = [];
    const watch = clientRegistry.watch(service, (u) => updates.push(u));
    const call = async () => {
      const res = await client.request({ service, path: '/work' });
      expect(await res.body.text()).toBe('ok');
    };
    await call();

    // The agent goes away: errors everywhere (watches, heartbeats), each one a chance to leak.
    await double.stop();
    await waitFor(() => updates.some((u) => !u.ok), 10_000, 'a watch error');
    await call(); // served from the cache
    await sleep(800);
    // It comes back empty, as a restarted dev agent: the instance registers again, with the token.
    await double.restart();
    await waitFor(() => instance.events.includes('reregistered'), 15_000, 'the instance to register again', () => instance.output);
    await waitFor(
      () => {
        const last = updates.at(-1);
        return last?.ok === true && last.instances.some((i) => i.id === id);
      },
      15_000,
      'the watch to see it again',
    );
    await call();
    watch.close();

    // Every request that reached the agent carried the token (the double refuses the rest).
    const seen = proxy.seen;
    expect(seen.length).toBeGreaterThan(10);
    expect(seen.filter((r) => r.token !== TOKEN)).toEqual([]);
    expect(seen.some((r) => r.path.startsWith('/v1/agent/service/register'))).toBe(true);
    expect(seen.some((r) => r.path.startsWith('/v1/agent/check/pass/'))).toBe(true);
    expect(seen.some((r) => r.path.startsWith('/v1/health/service/'))).toBe(true);

    for (const u of updates) if (!u.ok) errors.push(u.error);
    expect(errors.length).toBeGreaterThan(0);
    expect(instance.output).toMatch(/registration error/); // it did print its heartbeat failures...
    expect(instance.output).not.toContain(TOKEN); // ...without the token
    expect(logger.lines.length).toBeGreaterThan(0);
    expect(logger.lines.join('\n')).not.toContain(TOKEN);
    for (const err of errors) expect(shown(err)).not.toContain(TOKEN);
  });

  it('a refused token is a typed error that does not repeat it', async () => {
    const wrong = `wrong-${randomUUID()}`;
    const r = registry({ address: double.url, token: wrong });
    const failures = await Promise.all([
      r.register({ id: 'x-1', service: 'secure-wrong', address: '127.0.0.1', port: peer.port }, { ttlMs: 10_000 }).catch((e: unknown) => e),
      r.list('secure-wrong').catch((e: unknown) => e),
      r.heartbeat('x-1').catch((e: unknown) => e),
    ]);
    for (const err of failures) {
      expect(err).toBeInstanceOf(RegistryAuthError);
      expect((err as PeerlbError).code).toBe('PEERLB_REGISTRY_AUTH');
      expect(shown(err)).not.toContain(wrong);
    }
    const updates: WatchUpdate[] = [];
    const watch = r.watch('secure-wrong', (u) => updates.push(u));
    await waitFor(() => updates.length > 0, 10_000, 'the watch to report');
    watch.close();
    expect(updates[0]!.ok).toBe(false);
    expect(shown((updates[0] as { error: Error }).error)).not.toContain(wrong);
    expect(logger.lines.join('\n')).not.toContain(wrong);
  });

  it('an agent that echoes the token back in its answers has it redacted', async () => {
    const echo = await startGarblingProxy(double.port);
    try {
      echo.junk = [
        (req, res) => {
          res.writeHead(500, { 'content-type': 'text/plain' });
          res.end(`token ${String(req.headers['x-consul-token'])} is not allowed here`);
        },
        (req, res) => {
          res.writeHead(403, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ error: `ACL not found for ${String(req.headers['x-consul-token'])}` }));
        },
      ];
      const r = registry({ address: echo.url, token: TOKEN });
      const first = await r.list('secure-echo').catch((e: unknown) => e);
      const second = await r.list('secure-echo').catch((e: unknown) => e);
      expect(first).toBeInstanceOf(RegistryUnavailableError);
      expect(second).toBeInstanceOf(RegistryAuthError);
      for (const err of [first, second]) {
        expect(String((err as Error).message)).toContain('[redacted]');
        expect(shown(err)).not.toContain(TOKEN);
      }
    } finally {
      await echo.close();
    }
  });

  it('a malformed token is refused at construction without being echoed', () => {
    const secret = randomUUID();
    for (const token of [`bad token ${secret}`, `${secret}\r\nx-injected: 1`, `${secret}\u00e9`, '']) {
      let error: unknown;
      try {
        registry({ address: double.url, token });
      } catch (err) {
        error = err;
      }
      expect((error as PeerlbError)?.code).toBe('PEERLB_INVALID_OPTIONS');
      expect(shown(error)).not.toContain(secret);
    }
  });
});

describe('Consul over HTTPS with a custom CA', () => {
  let double: ConsulDouble;
  let scratch: string;
  let pki: Pki;
  let rogue: Pki;
  let tls: TlsTerminator;
  let peer: Peer;
  const registries: Registry[] = [];

  beforeAll(async () => {
    expect(hasOpenssl(), 'the openssl command line tool is needed to make a test CA').toBe(true);
    scratch = await mkdtemp(join(tmpdir(), 'peerlb-tls-'));
    pki = makePki(scratch);
    rogue = makePki(scratch, 'rogue');
    double = await startConsulDouble({ minCheckIntervalMs: 100 });
    tls = await startTlsTerminator(pki, double.port);
    peer = await startPeer();
  });
  afterAll(async () => {
    await Promise.all(registries.map((r) => r.close()));
    await peer?.close();
    await tls?.close();
    await double?.close();
    if (scratch) await rm(scratch, { recursive: true, force: true });
  });

  const track = <R extends Registry>(r: R): R => (registries.push(r), r);

  it('registers, reads, watches and serves a client with the CA given as an option or by CONSUL_CACERT', async () => {
    const service = 'secure-https';
    const direct = track(new ConsulRegistry({ address: tls.url, caCert: pki.ca, waitMs: 2_000, env: {} }));
    await direct.register({ id: 'https-1', service, address: '127.0.0.1', port: peer.port }, { ttlMs: 60_000 });
    await direct.heartbeat('https-1');
    expect((await direct.list(service)).map((i) => i.id)).toEqual(['https-1']);

    const fromEnv = track(registryFromEnv({ env: { CONSUL_HTTP_ADDR: tls.url, CONSUL_CACERT: pki.caFile } }));
    expect(fromEnv.kind).toBe('consul');
    expect((await fromEnv.list(service)).map((i) => i.id)).toEqual(['https-1']);

    const client = createClient({ registry: fromEnv });
    try {
      const res = await client.request({ service, path: '/' });
      expect(res.statusCode).toBe(200);
      await res.body.dump();
    } finally {
      await client.close();
    }
    expect(tls.handshakes).toBeGreaterThan(0);
  });

  it('refuses an agent whose certificate the CA did not sign, with a typed error', async () => {
    const handshakes = tls.handshakes;
    const untrusting = [
      track(new ConsulRegistry({ address: tls.url, env: {} })), // Node's default CAs only
      track(new ConsulRegistry({ address: tls.url, caCert: rogue.ca, env: {} })), // another CA
    ];
    for (const r of untrusting) {
      const err = await r.list('secure-https').catch((e: unknown) => e);
      expect(err).toBeInstanceOf(RegistryUnavailableError);
      expect((err as PeerlbError).code).toBe('PEERLB_REGISTRY_UNAVAILABLE');
      expect(String((err as Error).message)).toMatch(/certificate/i);
    }
    // The client gave up during the handshake: no TLS session was ever completed.
    expect(tls.handshakes).toBe(handshakes);
  });
});

describe('Consul TLS settings from the environment: client certificate, CA directory, server name, no verification', () => {
  const SERVER_NAME = 'consul.peerlb.test';
  let double: ConsulDouble;
  let scratch: string;
  let pki: Pki;
  let rogue: Pki;
  let client: Issued;
  /** Demands a client certificate signed by `pki`'s CA (Consul's verify_incoming_https). */
  let mutual: TlsTerminator;
  /** Serves a certificate that names only SERVER_NAME, not 127.0.0.1. */
  let named: TlsTerminator;
  /** Serves `rogue`'s certificate: nothing here trusts it. */
  let untrusted: TlsTerminator;
  const registries: Registry[] = [];
  const logger = new CapturingLogger();

  beforeAll(async () => {
    expect(hasOpenssl(), 'the openssl command line tool is needed to make a test CA').toBe(true);
    scratch = await mkdtemp(join(tmpdir(), 'peerlb-tls-env-'));
    pki = makePki(scratch);
    rogue = makePki(scratch, 'rogue');
    client = pki.issue('client', { cn: 'peerlb-registry', usage: 'clientAuth' });
    double = await startConsulDouble({ minCheckIntervalMs: 100 });
    mutual = await startTlsTerminator(pki, double.port, { requireClientCert: true });
    named = await startTlsTerminator(pki, double.port, {
      identity: pki.issue('named', { cn: SERVER_NAME, san: `DNS:${SERVER_NAME}`, usage: 'serverAuth' }),
    });
    untrusted = await startTlsTerminator(rogue, double.port);
  });
  afterAll(async () => {
    await Promise.all(registries.map((r) => r.close()));
    await Promise.all([mutual, named, untrusted].map((t) => t?.close()));
    await double?.close();
    if (scratch) await rm(scratch, { recursive: true, force: true });
  });

  /** A registry configured the way a deployed service is: by environment variables only. */
  const fromEnv = (env: NodeJS.ProcessEnv): ConsulRegistry => {
    const r = new ConsulRegistry({ env, logger, requestTimeoutMs: 5_000 });
    registries.push(r);
    return r;
  };

  async function refused(r: ConsulRegistry, message: RegExp): Promise<void> {
    const started = performance.now();
    const err = await r.list('tls-env').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RegistryUnavailableError);
    expect((err as PeerlbError).code).toBe('PEERLB_REGISTRY_UNAVAILABLE');
    expect(String((err as Error).message)).toMatch(message);
    // A refusal is an answer, not a time-out: well inside requestTimeoutMs.
    expect(performance.now() - started).toBeLessThan(3_000);
  }

  it('an agent demanding a client certificate refuses a registry without one, or with one of another CA', async () => {
    const withoutCert = fromEnv({ CONSUL_HTTP_ADDR: mutual.url, CONSUL_CACERT: pki.caFile });
    await refused(withoutCert, /certificate required/i);
    const strangerCert = rogue.issue('client', { cn: 'stranger', usage: 'clientAuth' });
    const stranger = fromEnv({
      CONSUL_HTTP_ADDR: mutual.url,
      CONSUL_CACERT: pki.caFile,
      CONSUL_CLIENT_CERT: strangerCert.certFile,
      CONSUL_CLIENT_KEY: strangerCert.keyFile,
    });
    // The agent ends the handshake; how the client hears of it (an alert, a hang-up) varies.
    await refused(stranger, /certificate|alert|unknown ca|socket hang up|ECONNRESET/i);
    expect(mutual.handshakes).toBe(0);
  });

  it('accepts the client certificate named by CONSUL_CLIENT_CERT and CONSUL_CLIENT_KEY, and never shows the key', async () => {
    const r = fromEnv({
      CONSUL_HTTP_ADDR: mutual.url,
      CONSUL_CACERT: pki.caFile,
      CONSUL_CLIENT_CERT: client.certFile,
      CONSUL_CLIENT_KEY: client.keyFile,
    });
    await r.register({ id: 'mtls-1', service: 'tls-env', address: '127.0.0.1', port: 8080 }, { ttlMs: 60_000 });
    await r.heartbeat('mtls-1');
    expect((await r.list('tls-env')).map((i) => i.id)).toEqual(['mtls-1']);
    expect(mutual.clientNames.length).toBeGreaterThan(0);
    expect(new Set(mutual.clientNames)).toEqual(new Set(['peerlb-registry']));
    await r.deregister('mtls-1');

    const keyBody = client.key.split('\n')[1]!;
    expect(inspect(r, { depth: 10, showHidden: true })).not.toContain(keyBody);
    expect(logger.lines.join('\n')).not.toContain(keyBody);
    // A key that is not the certificate's is refused at construction, without showing either key.
    let error: unknown;
    try {
      fromEnv({ CONSUL_HTTP_ADDR: mutual.url, CONSUL_CLIENT_CERT: client.certFile, CONSUL_CLIENT_KEY: pki.keyFile });
    } catch (err) {
      error = err;
    }
    expect((error as PeerlbError)?.code).toBe('PEERLB_INVALID_OPTIONS');
    expect(shown(error)).toContain('CONSUL_CLIENT_KEY');
    expect(shown(error)).not.toContain(pki.key.split('\n')[1]!);
  });

  it('CONSUL_TLS_SERVER_NAME accepts a certificate issued for another name when it names that name, and only then', async () => {
    const env = { CONSUL_HTTP_ADDR: named.url, CONSUL_CACERT: pki.caFile };
    // The certificate names consul.peerlb.test, not the 127.0.0.1 the address dials.
    await refused(fromEnv(env), /altnames: IP: 127\.0\.0\.1/);
    await refused(fromEnv({ ...env, CONSUL_TLS_SERVER_NAME: 'other.peerlb.test' }), /altnames: Host: other\.peerlb\.test/);
    expect(named.handshakes).toBe(0);

    // With a port, as Consul's client allows: the port is dropped.
    for (const name of [SERVER_NAME, `${SERVER_NAME}:8501`]) {
      expect(await fromEnv({ ...env, CONSUL_TLS_SERVER_NAME: name }).list('tls-env')).toEqual([]);
    }
    // It is also the SNI name the agent sees.
    expect(named.serverNames).toEqual([SERVER_NAME, SERVER_NAME]);
  });

  it('CONSUL_HTTP_SSL_VERIFY=false accepts a certificate nothing trusts, and says so once', async () => {
    await refused(fromEnv({ CONSUL_HTTP_ADDR: untrusted.url }), /certificate/i);
    await refused(fromEnv({ CONSUL_HTTP_ADDR: untrusted.url, CONSUL_HTTP_SSL_VERIFY: 'true' }), /certificate/i);
    expect(untrusted.handshakes).toBe(0);

    const before = logger.lines.length;
    const r = fromEnv({ CONSUL_HTTP_ADDR: untrusted.url, CONSUL_HTTP_SSL_VERIFY: 'false' });
    const warnings = logger.lines.slice(before);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/verification is off/);
    expect(await r.list('tls-env')).toEqual([]);
    await r.heartbeat('tls-unknown').catch(() => undefined);
    expect(untrusted.handshakes).toBeGreaterThan(0);
    expect(logger.lines.length).toBe(before + 1); // once at construction, not per call
  });

  it('CONSUL_CAPATH trusts the CAs in a directory; CONSUL_CACERT wins when both are set', async () => {
    const good = join(scratch, 'capath-good');
    const strangers = join(scratch, 'capath-rogue');
    await mkdir(join(good, 'nested'), { recursive: true });
    await mkdir(strangers, { recursive: true });
    await copyFile(rogue.caFile, join(good, 'a-rogue.pem'));
    await copyFile(pki.caFile, join(good, 'nested', 'peerlb.crt'));
    await copyFile(rogue.caFile, join(strangers, 'rogue.pem'));

    const handshakes = named.handshakes;
    const env = { CONSUL_HTTP_ADDR: named.url, CONSUL_TLS_SERVER_NAME: SERVER_NAME };
    expect(await fromEnv({ ...env, CONSUL_CAPATH: good }).list('tls-env')).toEqual([]);
    expect(named.handshakes).toBe(handshakes + 1);
    await refused(fromEnv({ ...env, CONSUL_CAPATH: strangers }), /certificate/i);
    // As in Consul: the CA file is used and the directory is not read at all.
    await refused(fromEnv({ ...env, CONSUL_CACERT: rogue.caFile, CONSUL_CAPATH: good }), /certificate/i);
    expect(await fromEnv({ ...env, CONSUL_CACERT: pki.caFile, CONSUL_CAPATH: strangers }).list('tls-env')).toEqual([]);
    expect(named.handshakes).toBe(handshakes + 2);
  });
});
