import { ConsulRegistry, silentLogger } from '@peerlb/registry';
import { registryConformance } from '@peerlb/registry/testkit';
import type { ConformanceTarget } from '@peerlb/registry/testkit';
import { newToken, startDevAgent, type DevAgent } from './support/consul-agent.js';
import { startConsulDouble, type ConsulDouble } from './support/consul-double.js';

// The Consul adapter against the agent test double, with ACL enforcement on so every call proves
// the token is sent. Check intervals below Consul's 1 s floor and sub-minute
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
      // The double reaps sooner than a real agent's 1 minute (see its header).
      minDeregisterCriticalAfterMs: 0,
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

// The same suite against a real `consul agent -dev` (Consul 1.8.7, fetched by scripts/consul.sh):
// once with ACLs off, once with ACLs on (default deny, a management token).
function realAgentTarget(token: string | undefined): ConformanceTarget {
  let agent: DevAgent | undefined;
  return {
    settleMs: 3_000,
    minCheckIntervalMs: 1_000,
    minDeregisterCriticalAfterMs: 60_000,
    async setup() {
      agent = await startDevAgent(token === undefined ? {} : { aclToken: token });
    },
    async open() {
      return new ConsulRegistry({
        address: agent!.url,
        ...(token === undefined ? {} : { token }),
        waitMs: 5_000,
        backoff: { minMs: 50, maxMs: 500 },
        logger: silentLogger,
        env: {},
      });
    },
    peerProcessConfig: () => ({ kind: 'consul', address: agent!.url, ...(token === undefined ? {} : { token }) }),
    restart: () => agent!.restart(),
    // What other tools really write: a port of 0 and an address that is a URL, both with a passing check.
    async injectMalformed(service) {
      for (const [suffix, fields] of [
        ['port-0', { Address: '127.0.0.1', Port: 0 }],
        ['url-address', { Address: 'http://evil.example/', Port: 80 }],
      ] as const) {
        const res = await fetch(`${agent!.url}/v1/agent/service/register`, {
          method: 'PUT',
          headers: token === undefined ? {} : { 'X-Consul-Token': token },
          body: JSON.stringify({ ID: `${service}-${suffix}`, Name: service, ...fields, Check: { TTL: '60s', Status: 'passing' } }),
        });
        if (res.status !== 200) throw new Error(`injecting ${suffix}: HTTP ${res.status} ${await res.text()}`);
      }
    },
    async teardown() {
      await agent?.close();
    },
  };
}

registryConformance('consul (real agent 1.8.7)', realAgentTarget(undefined));
registryConformance('consul (real agent 1.8.7, ACL default deny)', realAgentTarget(newToken()));
