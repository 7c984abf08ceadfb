import { ConsulRegistry, silentLogger } from '@peerlb/registry';
import { registryConformance } from '@peerlb/registry/testkit';
import { startConsulDouble, type ConsulDouble } from './support/consul-double.js';

// The Consul adapter against the agent test double (always), with ACL enforcement on so every
// call proves the token is sent. Check intervals below Consul's 1 s floor and sub-minute
// deregister-critical-after values are allowed by the double only, to keep the run short.
const TOKEN = 'conformance-secret-token';
let double: ConsulDouble | undefined;

registryConformance('consul (agent test double)', {
  settleMs: 1_000,
  minCheckIntervalMs: 100,
  async setup() {
    double = await startConsulDouble({ token: TOKEN, minCheckIntervalMs: 100, reapIntervalMs: 100 });
  },
  async open() {
    return new ConsulRegistry({
      address: double!.url,
      token: TOKEN,
      waitMs: 5_000,
      backoff: { minMs: 50, maxMs: 500 },
      logger: silentLogger,
      env: {},
    });
  },
  peerProcessConfig: () => ({ kind: 'consul', address: double!.url, token: TOKEN }),
  restart: () => double!.restart(),
  async injectMalformed(service) {
    const node = { ID: 'n1', Node: 'double-node', Address: '127.0.0.1', Datacenter: 'dc1', TaggedAddresses: {}, Meta: {} };
    const check = { Node: 'double-node', CheckID: 'serfHealth', Name: 'Serf Health Status', Status: 'passing' };
    double!.injectRawEntry(service, { Node: node, Service: { ID: `${service}-bad-port`, Service: service, Address: '127.0.0.1', Port: 70_000, Tags: [], Meta: {} }, Checks: [check] });
    double!.injectRawEntry(service, { Node: node, Service: { ID: `${service}-bad-addr`, Service: service, Address: 'http://evil.example/', Port: 80, Tags: [], Meta: {} }, Checks: [check] });
    double!.injectRawEntry(service, { Node: node, Service: null, Checks: [] });
    double!.injectRawEntry(service, 'not even an object');
  },
  backendReads: () => double!.requestCount('/v1/health/service/'),
  async teardown() {
    await double?.close();
  },
});

// The same suite against a real agent when one is configured; CI has none (no Consul binary can
// be installed on these machines), so this says so instead of running.
const realAgent = process.env.CONSUL_HTTP_ADDR;
if (realAgent) {
  registryConformance(`consul (real agent at ${realAgent})`, {
    settleMs: 3_000,
    minCheckIntervalMs: 1_000,
    minDeregisterCriticalAfterMs: 60_000,
    async open() {
      return new ConsulRegistry({ logger: silentLogger });
    },
    peerProcessConfig: () => ({
      kind: 'consul',
      address: realAgent,
      ...(process.env.CONSUL_HTTP_TOKEN ? { token: process.env.CONSUL_HTTP_TOKEN } : {}),
    }),
    async teardown() {},
  });
} else {
  console.info('[conformance] consul (real agent): not run, CONSUL_HTTP_ADDR is not set');
}
