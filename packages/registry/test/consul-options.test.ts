import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { ConsulRegistry, InvalidOptionsError, RegistryUnavailableError, type ConsulRegistryOptions } from '../src/index.js';
import { resolveConsulOptions } from '../src/consul/consul-options.js';
import { startConsulStub, type ConsulStub } from './consul-stub.js';

// A throw-away CA and a server certificate it signed (SAN 127.0.0.1, ::1, localhost), valid
// 2000..2100, so the TLS tests need no openssl at test time. Test material only.
const TEST_CA_PEM = `-----BEGIN CERTIFICATE-----
MIIBZTCCAQugAwIBAgIBATAKBggqhkjOPQQDAjAZMRcwFQYDVQQDDA5wZWVybGIg
dGVzdCBDQTAgFw0wMDAxMDEwMDAwMDBaGA8yMTAwMDEwMTAwMDAwMFowGTEXMBUG
A1UEAwwOcGVlcmxiIHRlc3QgQ0EwWTATBgcqhkjOPQIBBggqhkjOPQMBBwNCAAT0
FfuekuAIkZIKu7GSAloMYqBqW8mOrMN4lD5AHs3AfXBiZH1FctJ30d3jVW8OcADj
CTa+C+XjjXseyTIwuSJxo0IwQDAPBgNVHRMBAf8EBTADAQH/MA4GA1UdDwEB/wQE
AwICBDAdBgNVHQ4EFgQUT5KJ9wJWSGzYe2XrMh8eFWsGGIcwCgYIKoZIzj0EAwID
SAAwRQIhANSu63xSAEUAHnEWKiVZ+/heRawW3prhACSltLPlXuNYAiBrhFgeiquJ
hedeJHoq4+3vP1t06L8dEjA7VOd1f8/haA==
-----END CERTIFICATE-----
`;
const SERVER_CERT_PEM = `-----BEGIN CERTIFICATE-----
MIIBrjCCAVagAwIBAgIBAjAKBggqhkjOPQQDAjAZMRcwFQYDVQQDDA5wZWVybGIg
dGVzdCBDQTAgFw0wMDAxMDEwMDAwMDBaGA8yMTAwMDEwMTAwMDAwMFowFDESMBAG
A1UEAwwJbG9jYWxob3N0MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEkl8WQhAO
TJA6AJUE9Yaw1+2NDGUZOlDrIhPIOybCQ6ejWaJ2DP9g5q+vu6AJMdfeAhcd6sGs
4ObW55QT/XTXP6OBkTCBjjAJBgNVHRMEAjAAMBMGA1UdJQQMMAoGCCsGAQUFBwMB
MCwGA1UdEQQlMCOHBH8AAAGHEAAAAAAAAAAAAAAAAAAAAAGCCWxvY2FsaG9zdDAd
BgNVHQ4EFgQU0qsrKX1DHiRWdcT6SY9wuh+E9+cwHwYDVR0jBBgwFoAUT5KJ9wJW
SGzYe2XrMh8eFWsGGIcwCgYIKoZIzj0EAwIDRgAwQwIgUwsflis50Rt/G01jiTBD
sxjp854nZkVTycoNf8IFueICHzimNX2RkdYErJ5b1xfDxECLOBw/dkX5q5Hj7heb
V0Y=
-----END CERTIFICATE-----
`;
const SERVER_KEY_PEM = `-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgK1KzLXMgaMWT8Qdl
jkZRYefRrY2fsiM20SvQP7xMLfyhRANCAASSXxZCEA5MkDoAlQT1hrDX7Y0MZRk6
UOsiE8g7JsJDp6NZonYM/2Dmr6+7oAkx194CFx3qwazg5tbnlBP9dNc/
-----END PRIVATE KEY-----
`;

const TOKEN = '0f6b1d2e-env-token-secret';
const stubs: ConsulStub[] = [];
const registries: ConsulRegistry[] = [];
const tmp = mkdtempSync(join(tmpdir(), 'peerlb-consul-options-'));

afterEach(async () => {
  await Promise.all(registries.splice(0).map((r) => r.close()));
  await Promise.all(stubs.splice(0).map((s) => s.close()));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function open(options: ConsulRegistryOptions): ConsulRegistry {
  // The stub has no catalog: register() resolves once the agent accepted it.
  const registry = new ConsulRegistry({ logger: { warn() {} }, confirmRegistration: false, ...options });
  registries.push(registry);
  return registry;
}

async function stub(options: Parameters<typeof startConsulStub>[1] = {}): Promise<ConsulStub> {
  const s = await startConsulStub(() => ({ headers: { 'x-consul-index': '1' }, json: [] }), options);
  stubs.push(s);
  return s;
}

function invalid(options: ConsulRegistryOptions): InvalidOptionsError {
  try {
    new ConsulRegistry(options);
  } catch (err) {
    expect(err).toBeInstanceOf(InvalidOptionsError);
    return err as InvalidOptionsError;
  }
  throw new Error('expected InvalidOptionsError');
}

describe('ConsulRegistry address', () => {
  it.each<[string, ConsulRegistryOptions, string]>([
    ['the default', { env: {} }, 'http://127.0.0.1:8500'],
    ['CONSUL_HTTP_ADDR host:port', { env: { CONSUL_HTTP_ADDR: '10.0.0.5:8500' } }, 'http://10.0.0.5:8500'],
    ['CONSUL_HTTP_ADDR with https', { env: { CONSUL_HTTP_ADDR: 'https://consul.example.com:8501' } }, 'https://consul.example.com:8501'],
    ['CONSUL_HTTP_SSL=true for a scheme-less address', { env: { CONSUL_HTTP_ADDR: 'consul:8501', CONSUL_HTTP_SSL: 'true' } }, 'https://consul:8501'],
    ['CONSUL_HTTP_SSL=false', { env: { CONSUL_HTTP_ADDR: 'consul:8500', CONSUL_HTTP_SSL: 'false' } }, 'http://consul:8500'],
    ['an explicit scheme over CONSUL_HTTP_SSL', { env: { CONSUL_HTTP_ADDR: 'http://consul:8500', CONSUL_HTTP_SSL: 'true' } }, 'http://consul:8500'],
    ['the scheme default port, as Consul\'s Go client does', { env: { CONSUL_HTTP_ADDR: 'https://consul.example.com' } }, 'https://consul.example.com:443'],
    ['the option over the environment', { address: 'http://127.0.0.2:9500', env: { CONSUL_HTTP_ADDR: '10.0.0.5:8500' } }, 'http://127.0.0.2:9500'],
    ['an IPv6 literal', { address: '[::1]:8500', env: {} }, 'http://[::1]:8500'],
    ['an empty CONSUL_HTTP_ADDR as unset', { env: { CONSUL_HTTP_ADDR: '' } }, 'http://127.0.0.1:8500'],
  ])('resolves %s', (_label, options, expected) => {
    expect(open(options).address).toBe(expected);
  });

  it.each<[string, ConsulRegistryOptions, RegExp]>([
    ['another scheme', { address: 'unix:///var/run/consul.sock', env: {} }, /scheme must be http or https/],
    ['a path', { address: 'http://consul:8500/v1', env: {} }, /without a path/],
    ['credentials', { address: 'http://user:pw@consul:8500', env: {} }, /credentials/],
    ['garbage', { address: 'http://exa mple:80', env: {} }, /not a valid/],
    ['an empty option', { address: '', env: {} }, /non-empty/],
    ['a bad CONSUL_HTTP_ADDR, naming the variable', { env: { CONSUL_HTTP_ADDR: 'ftp://consul:21' } }, /CONSUL_HTTP_ADDR/],
    ['a bad CONSUL_HTTP_SSL', { env: { CONSUL_HTTP_ADDR: 'consul:8500', CONSUL_HTTP_SSL: 'yes please' } }, /CONSUL_HTTP_SSL/],
  ])('rejects %s, naming the address field', (_label, options, message) => {
    const err = invalid(options);
    expect(err.field).toBe('address');
    expect(err.message).toMatch(message);
  });

  it('talks to an agent on an IPv6 loopback address', async () => {
    // Hosts without IPv6 loopback cannot run this; say so instead of failing on the environment.
    if (!(await canListen('::1'))) {
      console.info('[consul-options] no IPv6 loopback here: IPv6 address test not run');
      return;
    }
    const s = await stub({ host: '::1' });
    expect(await open({ address: s.url, env: {} }).list('web')).toEqual([]);
    expect(s.requests).toHaveLength(1);
    // Over TLS the certificate names the bare IP, never the bracketed URL form.
    const tls = await stub({ host: '::1', tls: { key: SERVER_KEY_PEM, cert: SERVER_CERT_PEM } });
    expect(await open({ address: tls.url, caCert: TEST_CA_PEM, env: {} }).list('web')).toEqual([]);
  });
});

describe('ConsulRegistry token', () => {
  it('sends CONSUL_HTTP_TOKEN as X-Consul-Token on every call', async () => {
    const s = await stub();
    const registry = open({ address: s.url, env: { CONSUL_HTTP_TOKEN: TOKEN } });
    await registry.list('web');
    await registry.register({ id: 'w-1', service: 'web', address: '127.0.0.1', port: 80 }, { ttlMs: 1_000 });
    await registry.heartbeat('w-1');
    await registry.deregister('w-1');
    expect(s.requests).toHaveLength(4);
    expect(s.requests.map((r) => r.headers['x-consul-token'])).toEqual([TOKEN, TOKEN, TOKEN, TOKEN]);
    expect(s.requests.some((r) => r.query.toString().includes(TOKEN))).toBe(false);
  });

  it('prefers the token option, and sends no header without a token', async () => {
    const s = await stub();
    await open({ address: s.url, token: 'option-token', env: { CONSUL_HTTP_TOKEN: TOKEN } }).list('web');
    await open({ address: s.url, env: { CONSUL_HTTP_TOKEN: '' } }).list('web');
    expect(s.requests.map((r) => r.headers['x-consul-token'])).toEqual(['option-token', undefined]);
  });

  it('rejects a malformed token without echoing it', () => {
    const bad = 'secret with spaces\n';
    const fromOption = invalid({ token: bad, env: {} });
    expect(fromOption.field).toBe('token');
    expect(fromOption.message).not.toContain('secret');
    const fromEnv = invalid({ env: { CONSUL_HTTP_TOKEN: bad } });
    expect(fromEnv.field).toBe('token');
    expect(fromEnv.message).toContain('CONSUL_HTTP_TOKEN');
    expect(fromEnv.message).not.toContain('secret');
  });

  it('keeps the token out of what inspecting the registry prints', async () => {
    const { inspect } = await import('node:util');
    const registry = open({ token: TOKEN, env: {} });
    expect(inspect(registry, { depth: 10, showHidden: true })).not.toContain(TOKEN);
  });
});

describe('ConsulRegistry CA certificate', () => {
  it('trusts the CA read from the file named by CONSUL_CACERT', async () => {
    const s = await stub({ tls: { key: SERVER_KEY_PEM, cert: SERVER_CERT_PEM } });
    const caFile = join(tmp, 'ca.pem');
    writeFileSync(caFile, TEST_CA_PEM);
    const registry = open({ env: { CONSUL_HTTP_ADDR: s.url, CONSUL_CACERT: caFile } });
    expect(registry.address).toBe(s.url);
    expect(await registry.list('web')).toEqual([]);
  });

  it('trusts a CA given as caCert, and refuses the agent without it', async () => {
    const s = await stub({ tls: { key: SERVER_KEY_PEM, cert: SERVER_CERT_PEM } });
    expect(await open({ address: s.url, caCert: Buffer.from(TEST_CA_PEM), env: {} }).list('web')).toEqual([]);
    const untrusting = open({ address: s.url, env: {} });
    await expect(untrusting.list('web')).rejects.toBeInstanceOf(RegistryUnavailableError);
    expect(s.requests).toHaveLength(1);
  });

  it('reports an unreadable CONSUL_CACERT file or non-PEM content under caCert', () => {
    const missing = invalid({ env: { CONSUL_CACERT: join(tmp, 'nope.pem') } });
    expect(missing.field).toBe('caCert');
    expect(missing.message).toContain('nope.pem');
    expect(missing.message).toContain('ENOENT');
    expect(invalid({ caCert: '/etc/consul/ca.pem', env: {} }).field).toBe('caCert');
  });
});

/** A file in this test's scratch directory. */
function file(name: string, content: string): string {
  const path = join(tmp, name);
  mkdirSync(join(path, '..'), { recursive: true });
  writeFileSync(path, content);
  return path;
}

/** A fresh P-256 key as PKCS#8 PEM (optionally encrypted); it belongs to no certificate here. */
function strayKey(passphrase?: string): string {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  return privateKey.export(
    passphrase === undefined
      ? { type: 'pkcs8', format: 'pem' }
      : { type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase },
  ) as string;
}

/** The base64 body of a PEM key: what must never show in an error. */
const keyBody = (pem: string) => pem.split('\n').slice(1, -2).join('');

describe('ConsulRegistry client certificate', () => {
  // The server pair doubles as a client pair here: the tests are about reading and pairing.
  const certFile = file('client/cert.pem', SERVER_CERT_PEM);
  const keyFile = file('client/key.pem', SERVER_KEY_PEM);

  it('reads CONSUL_CLIENT_CERT and CONSUL_CLIENT_KEY files; the options win over them', () => {
    const fromEnv = resolveConsulOptions({ env: { CONSUL_CLIENT_CERT: certFile, CONSUL_CLIENT_KEY: keyFile } }).tls;
    expect(String(fromEnv.cert)).toBe(SERVER_CERT_PEM);
    expect(String(fromEnv.key)).toBe(SERVER_KEY_PEM);
    const env = { CONSUL_CLIENT_CERT: join(tmp, 'missing.pem'), CONSUL_CLIENT_KEY: join(tmp, 'missing.key') };
    const fromOptions = resolveConsulOptions({ clientCert: Buffer.from(SERVER_CERT_PEM), clientKey: SERVER_KEY_PEM, env }).tls;
    expect(String(fromOptions.cert)).toBe(SERVER_CERT_PEM);
    expect(fromOptions.key).toBe(SERVER_KEY_PEM);
    const neither = resolveConsulOptions({ env: {} }).tls;
    expect([neither.cert, neither.key]).toEqual([undefined, undefined]);
  });

  it('wants both or neither, naming the missing field', () => {
    const noKey = invalid({ env: { CONSUL_CLIENT_CERT: certFile } });
    expect(noKey.field).toBe('clientKey');
    expect(noKey.message).toContain('CONSUL_CLIENT_CERT');
    expect(invalid({ clientCert: SERVER_CERT_PEM, env: {} }).field).toBe('clientKey');
    const noCert = invalid({ env: { CONSUL_CLIENT_KEY: keyFile } });
    expect(noCert.field).toBe('clientCert');
    expect(noCert.message).toContain('CONSUL_CLIENT_KEY');
    expect(keyBody(SERVER_KEY_PEM).length).toBeGreaterThan(40);
    expect(JSON.stringify(noCert) + noCert.message).not.toContain(keyBody(SERVER_KEY_PEM).slice(0, 40));
    expect(invalid({ clientKey: SERVER_KEY_PEM, env: {} }).field).toBe('clientCert');
  });

  it('names the variable and the path of a file it cannot read', () => {
    const cert = invalid({ env: { CONSUL_CLIENT_CERT: join(tmp, 'nope-cert.pem'), CONSUL_CLIENT_KEY: keyFile } });
    expect(cert.field).toBe('clientCert');
    expect(cert.message).toMatch(/CONSUL_CLIENT_CERT.*nope-cert\.pem.*ENOENT/);
    const key = invalid({ env: { CONSUL_CLIENT_CERT: certFile, CONSUL_CLIENT_KEY: join(tmp, 'nope-key.pem') } });
    expect(key.field).toBe('clientKey');
    expect(key.message).toMatch(/CONSUL_CLIENT_KEY.*nope-key\.pem.*ENOENT/);
  });

  it('refuses a key that is not PEM, encrypted, or not the certificate\'s, without showing it', () => {
    const secret = `not-a-key-${randomUUID()}`;
    const stray = strayKey();
    const encrypted = strayKey('pass');
    const cases: Array<[ConsulRegistryOptions, string, string]> = [
      [{ clientCert: SERVER_CERT_PEM, clientKey: secret }, 'clientKey', secret],
      [{ clientCert: SERVER_CERT_PEM, clientKey: stray }, 'clientKey', keyBody(stray)],
      [{ clientCert: SERVER_CERT_PEM, clientKey: encrypted }, 'clientKey', keyBody(encrypted)],
      [{ env: { CONSUL_CLIENT_CERT: certFile, CONSUL_CLIENT_KEY: file('client/stray.key', stray) } }, 'clientKey', keyBody(stray)],
      [{ clientCert: '/etc/consul/client.pem', clientKey: SERVER_KEY_PEM }, 'clientCert', keyBody(SERVER_KEY_PEM)],
      [{ clientCert: TEST_CA_PEM.replace(/\n[A-Za-z0-9+/]{64}\n/, '\n!!\n'), clientKey: SERVER_KEY_PEM }, 'clientCert', keyBody(SERVER_KEY_PEM)],
    ];
    for (const [options, field, hidden] of cases) {
      const err = invalid({ env: {}, ...options });
      expect(err.field).toBe(field);
      expect(`${err.message} ${String(err.stack)} ${JSON.stringify(err)}`).not.toContain(hidden);
    }
  });
});

describe('ConsulRegistry CA directory', () => {
  it('CONSUL_CAPATH trusts every CA file below the directory, as Consul\'s -ca-path', async () => {
    const dir = join(tmp, 'capath');
    file('capath/other.pem', SERVER_CERT_PEM);
    file('capath/nested/ca.crt', TEST_CA_PEM);
    expect(resolveConsulOptions({ env: { CONSUL_CAPATH: dir } }).tls.ca?.map(String)).toEqual([TEST_CA_PEM, SERVER_CERT_PEM]);
    const s = await stub({ tls: { key: SERVER_KEY_PEM, cert: SERVER_CERT_PEM } });
    expect(await open({ env: { CONSUL_HTTP_ADDR: s.url, CONSUL_CAPATH: dir } }).list('web')).toEqual([]);
    expect(await open({ address: s.url, caPath: dir, env: {} }).list('web')).toEqual([]);
  });

  it('prefers a CA file to a CA directory, and any CA option to the environment', () => {
    const caFile = file('ca-precedence.pem', TEST_CA_PEM);
    const otherDir = join(tmp, 'capath-other');
    file('capath-other/server.pem', SERVER_CERT_PEM);
    const missing = join(tmp, 'no-such-dir');
    const ca = (options: ConsulRegistryOptions) => resolveConsulOptions(options).tls.ca?.map(String);
    // The directory is not even read when CONSUL_CACERT is set.
    expect(ca({ env: { CONSUL_CACERT: caFile, CONSUL_CAPATH: missing } })).toEqual([TEST_CA_PEM]);
    expect(ca({ caPath: otherDir, env: { CONSUL_CACERT: caFile } })).toEqual([SERVER_CERT_PEM]);
    expect(ca({ caCert: TEST_CA_PEM, caPath: missing, env: {} })).toEqual([TEST_CA_PEM]);
    expect(ca({ caCert: TEST_CA_PEM, env: { CONSUL_CAPATH: missing } })).toEqual([TEST_CA_PEM]);
    expect(ca({ env: {} })).toBeUndefined();
  });

  it('names the variable and the path of a directory or file it cannot use', () => {
    const missing = invalid({ env: { CONSUL_CAPATH: join(tmp, 'gone') } });
    expect(missing.field).toBe('caPath');
    expect(missing.message).toMatch(/CONSUL_CAPATH.*gone.*ENOENT/);
    file('capath-bad/ok.pem', TEST_CA_PEM);
    file('capath-bad/notes.txt', 'not a certificate');
    const notPem = invalid({ env: { CONSUL_CAPATH: join(tmp, 'capath-bad') } });
    expect(notPem.field).toBe('caPath');
    expect(notPem.message).toMatch(/CONSUL_CAPATH.*notes\.txt/);
    mkdirSync(join(tmp, 'capath-empty'));
    expect(invalid({ caPath: join(tmp, 'capath-empty'), env: {} }).message).toContain('capath-empty');
    expect(invalid({ caPath: '', env: {} }).field).toBe('caPath');
    expect(invalid({ caPath: 5 as never, env: {} }).field).toBe('caPath');
  });
});

describe('ConsulRegistry TLS server name', () => {
  it.each<[string, ConsulRegistryOptions, string | undefined]>([
    ['unset', { env: {} }, undefined],
    ['CONSUL_TLS_SERVER_NAME', { env: { CONSUL_TLS_SERVER_NAME: 'consul.example.com' } }, 'consul.example.com'],
    ['a name with a port, dropped as Consul does', { env: { CONSUL_TLS_SERVER_NAME: 'consul.example.com:8501' } }, 'consul.example.com'],
    ['a bracketed IPv6 literal with a port', { env: { CONSUL_TLS_SERVER_NAME: '[::1]:8501' } }, '::1'],
    ['a bare IPv6 literal', { env: { CONSUL_TLS_SERVER_NAME: '::1' } }, '::1'],
    ['the option over the environment', { tlsServerName: 'b.example', env: { CONSUL_TLS_SERVER_NAME: 'a.example' } }, 'b.example'],
  ])('resolves %s', (_label, options, expected) => {
    expect(resolveConsulOptions(options).tls.serverName).toBe(expected);
  });

  it('rejects what is not a host name, naming the variable', () => {
    const fromEnv = invalid({ env: { CONSUL_TLS_SERVER_NAME: 'bad name' } });
    expect(fromEnv.field).toBe('tlsServerName');
    expect(fromEnv.message).toContain('CONSUL_TLS_SERVER_NAME');
    for (const tlsServerName of ['', 'https://consul.example.com', 'a:b:c', 5 as never]) {
      expect(invalid({ tlsServerName, env: {} }).field).toBe('tlsServerName');
    }
  });

  it('checks the agent\'s certificate against that name instead of the address', async () => {
    const s = await stub({ tls: { key: SERVER_KEY_PEM, cert: SERVER_CERT_PEM } }); // names 127.0.0.1, ::1, localhost
    expect(await open({ address: s.url, caCert: TEST_CA_PEM, tlsServerName: 'localhost', env: {} }).list('web')).toEqual([]);
    const other = open({ address: s.url, env: { CONSUL_CACERT: file('ca-sni.pem', TEST_CA_PEM), CONSUL_TLS_SERVER_NAME: 'consul.example.com' } });
    const err = await other.list('web').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RegistryUnavailableError);
    expect(String((err as Error).message)).toMatch(/consul\.example\.com/);
    expect(s.requests).toHaveLength(1);
  });
});

describe('ConsulRegistry TLS verification', () => {
  it.each<[string | undefined, boolean]>([
    [undefined, true], ['', true],
    ['1', true], ['t', true], ['T', true], ['TRUE', true], ['true', true], ['True', true],
    ['0', false], ['f', false], ['F', false], ['FALSE', false], ['false', false], ['False', false],
  ])('reads CONSUL_HTTP_SSL_VERIFY=%j as Go\'s strconv.ParseBool does: verify %s', (value, verify) => {
    const env = value === undefined ? {} : { CONSUL_HTTP_SSL_VERIFY: value };
    expect(resolveConsulOptions({ env }).tls.verify).toBe(verify);
  });

  it('rejects another CONSUL_HTTP_SSL_VERIFY value or a tlsVerify that is not a boolean', () => {
    for (const value of ['no', 'off', 'yes', ' false', 'FaLsE']) {
      const err = invalid({ env: { CONSUL_HTTP_SSL_VERIFY: value } });
      expect(err.field).toBe('tlsVerify');
      expect(err.message).toContain('CONSUL_HTTP_SSL_VERIFY');
    }
    expect(invalid({ tlsVerify: 'false' as never, env: {} }).field).toBe('tlsVerify');
    expect(resolveConsulOptions({ tlsVerify: false, env: { CONSUL_HTTP_SSL_VERIFY: 'true' } }).tls.verify).toBe(false);
    expect(resolveConsulOptions({ tlsVerify: true, env: { CONSUL_HTTP_SSL_VERIFY: 'false' } }).tls.verify).toBe(true);
  });

  it('off, accepts an agent no CA vouches for, after one warning that shows no secret', async () => {
    const s = await stub({ tls: { key: SERVER_KEY_PEM, cert: SERVER_CERT_PEM } });
    await expect(open({ address: s.url, env: {} }).list('web')).rejects.toBeInstanceOf(RegistryUnavailableError);
    const warnings: string[] = [];
    const logger = { warn: (message: string, details?: unknown) => warnings.push(`${message} ${JSON.stringify(details)}`) };
    const env = { CONSUL_HTTP_ADDR: s.url, CONSUL_HTTP_SSL_VERIFY: 'false', CONSUL_HTTP_TOKEN: TOKEN };
    const registry = open({ logger, env, clientCert: SERVER_CERT_PEM, clientKey: SERVER_KEY_PEM });
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/verification is off/);
    expect(await registry.list('web')).toEqual([]);
    expect(await open({ address: s.url, tlsVerify: false, env: {} }).list('web')).toEqual([]);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).not.toContain(TOKEN);
    expect(warnings[0]).not.toContain(keyBody(SERVER_KEY_PEM).slice(0, 40));
  });
});

describe('ConsulRegistry option validation', () => {
  it.each<[ConsulRegistryOptions, string]>([
    [{ datacenter: 'eu west' }, 'datacenter'],
    [{ waitMs: 0 }, 'waitMs'],
    [{ waitMs: 600_001 }, 'waitMs'],
    [{ minWatchIntervalMs: -1 }, 'minWatchIntervalMs'],
    [{ backoff: { minMs: 0 } }, 'backoff.minMs'],
    [{ backoff: { minMs: 500, maxMs: 100 } }, 'backoff.maxMs'],
    [{ backoff: 5 as never }, 'backoff'],
    [{ requestTimeoutMs: Number.NaN }, 'requestTimeoutMs'],
    [{ logger: {} as never }, 'logger'],
    [{ env: 'CONSUL_HTTP_ADDR=x' as never }, 'env'],
  ])('names the field for %j', (options, field) => {
    expect(invalid({ env: {}, ...options }).field).toBe(field);
  });

  it('accepts the documented limits', () => {
    expect(() => open({ env: {}, waitMs: 600_000, minWatchIntervalMs: 0, backoff: { minMs: 1, maxMs: 1 } })).not.toThrow();
  });
});

function canListen(host: string): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(0, host, () => server.close(() => resolve(true)));
  });
}
