import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomInt, randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, openSync, closeSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/*
 * Real Consul agents for tests: Debian bullseye's consul 1.8.7, fetched once by scripts/consul.sh
 * into node_modules/.cache/consul (outside git). Tests start and stop their own agents here.
 *
 * Other test runs may use Consul on this machine at the same time, so no agent uses the default
 * ports or 127.0.0.1: each gets its own random 127.x.y.z address (the whole 127/8 is loopback on
 * Linux) and ports the kernel reports free there. DNS and gRPC are off. Every agent is killed when
 * its owner closes it, and at process exit at the latest; data dirs live in one temp folder that
 * close() removes.
 */

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const SCRIPT = join(ROOT, 'scripts/consul.sh');
const READY_TIMEOUT_MS = 30_000;

let binaryPath: string | undefined;

/** The consul binary, fetched by scripts/consul.sh when it is not cached yet. */
export function consulBinary(): string {
  if (binaryPath !== undefined && existsSync(binaryPath)) return binaryPath;
  const out = execFileSync('bash', [SCRIPT], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  const path = out.trim().split('\n').pop() ?? '';
  if (!existsSync(path)) throw new Error(`scripts/consul.sh printed ${JSON.stringify(path)}, which does not exist`);
  binaryPath = path;
  return path;
}

export interface AgentPorts {
  http: number;
  serfLan: number;
  serfWan: number;
  server: number;
}

/** One agent process; it can be stopped and started again with the same address, ports and data. */
export interface ConsulAgent {
  readonly name: string;
  /** Bind and client address (a 127.x.y.z of its own). */
  readonly host: string;
  readonly ports: AgentPorts;
  /** `http://host:port` of its HTTP API. */
  readonly url: string;
  readonly running: boolean;
  /** SIGKILL (no leave): what a crash or power loss looks like to the cluster. */
  kill(): Promise<void>;
  /** Starts the process again (same config, same data dir) and waits until its HTTP API answers. */
  start(): Promise<void>;
  /**
   * SIGKILL, delete its data dir, start again: an agent that lost its state (same node name and
   * id, no services). Its services leave the catalog at its next anti-entropy sync.
   */
  forget(): Promise<void>;
  /** The agent's log so far, for failure messages. */
  log(): string;
}

const live = new Set<ChildProcess>();
let exitHookInstalled = false;
function killAllAtExit(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const child of live) killGroup(child);
  });
}

/** A random loopback address other than 127.0.0.1, so parallel runs do not meet. */
function loopbackAddress(): string {
  return `127.${randomInt(1, 255)}.${randomInt(0, 256)}.${randomInt(2, 255)}`;
}

async function freePort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, host, () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

async function choosePorts(host: string): Promise<AgentPorts> {
  const ports = new Set<number>();
  while (ports.size < 4) ports.add(await freePort(host));
  const [http, serfLan, serfWan, server] = [...ports] as [number, number, number, number];
  return { http, serfLan, serfWan, server };
}

interface AgentSpec {
  name: string;
  dir: string;
  /** HCL written to the agent's config file. */
  hcl: (host: string, ports: AgentPorts) => string;
  /** Extra command-line arguments (-dev, -server, ...). */
  args: string[];
  /** What "ready" means beyond the HTTP API answering (default: it answers). */
  ready?: (agent: ConsulAgent) => Promise<boolean>;
  /** Headers for the readiness probe (the token, when ACLs deny anonymous reads). */
  readyHeaders?: Record<string, string>;
  /** The agent's data dir, if it has one on disk. */
  dataDir?: string;
}

async function launchAgent(spec: AgentSpec): Promise<ConsulAgent> {
  const binary = consulBinary();
  killAllAtExit();
  let lastError: unknown;
  // A port reported free can be taken before the agent binds it: try again on fresh ones.
  for (let attempt = 0; attempt < 3; attempt++) {
    const host = loopbackAddress();
    const ports = await choosePorts(host);
    const agent = new AgentProcess(binary, spec, host, ports);
    try {
      await agent.start();
      return agent;
    } catch (err) {
      lastError = err;
      await agent.kill();
    }
  }
  throw lastError;
}

class AgentProcess implements ConsulAgent {
  private child: ChildProcess | undefined;
  private readonly logFile: string;
  private readonly configFile: string;

  constructor(
    private readonly binary: string,
    private readonly spec: AgentSpec,
    readonly host: string,
    readonly ports: AgentPorts,
  ) {
    this.logFile = join(spec.dir, `${spec.name}.log`);
    this.configFile = join(spec.dir, `${spec.name}.hcl`);
    writeFileSync(this.configFile, spec.hcl(host, ports));
  }

  get name(): string {
    return this.spec.name;
  }

  get url(): string {
    return `http://${this.host}:${this.ports.http}`;
  }

  get running(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  log(): string {
    try {
      return readFileSync(this.logFile, 'utf8');
    } catch {
      return '';
    }
  }

  async start(): Promise<void> {
    if (this.running) return;
    const out = openSync(this.logFile, 'a');
    const args = [
      'agent',
      ...this.spec.args,
      `-node=${this.spec.name}`,
      `-bind=${this.host}`,
      `-client=${this.host}`,
      `-config-file=${this.configFile}`,
    ];
    // In its own process group under a watchdog shell, so kill() ends both at once and the agent
    // dies with this process even when it is killed without running exit hooks (a test runner
    // stopping a worker): agents left running would hold memory on a machine others share.
    const child = spawn('sh', ['-c', WATCHDOG, 'consul-watchdog', String(process.pid), this.binary, ...args], {
      stdio: ['ignore', out, out],
      detached: true,
    });
    closeSync(out);
    this.child = child;
    live.add(child);
    child.once('exit', () => live.delete(child));
    const deadline = Date.now() + READY_TIMEOUT_MS;
    for (;;) {
      if (!this.running) throw new Error(`consul agent ${this.name} exited at start:\n${tail(this.log())}`);
      if (await this.answers()) return;
      if (Date.now() > deadline) throw new Error(`consul agent ${this.name} not ready within ${READY_TIMEOUT_MS} ms:\n${tail(this.log())}`);
      await sleep(100);
    }
  }

  private async answers(): Promise<boolean> {
    try {
      const res = await fetch(`${this.url}/v1/agent/self`, { signal: AbortSignal.timeout(1_000), headers: this.spec.readyHeaders ?? {} });
      await res.arrayBuffer();
      if (res.status !== 200) return false;
      return this.spec.ready ? await this.spec.ready(this) : true;
    } catch {
      return false;
    }
  }

  async forget(): Promise<void> {
    await this.kill();
    if (this.spec.dataDir !== undefined) rmSync(this.spec.dataDir, { recursive: true, force: true });
    await this.start();
  }

  async kill(): Promise<void> {
    const child = this.child;
    if (!child || !this.running) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    killGroup(child);
    await exited;
  }
}

/**
 * `sh -c WATCHDOG name <parent pid> <command...>`: runs the command, and kills it once the parent
 * is gone; exits with the command's status.
 */
const WATCHDOG = `parent=$1; shift
"$@" &
child=$!
while kill -0 "$parent" 2>/dev/null && kill -0 "$child" 2>/dev/null; do sleep 0.5; done
kill -9 "$child" 2>/dev/null
wait "$child"`;

/** SIGKILL to the child's process group (the watchdog shell and the agent). */
function killGroup(child: ChildProcess): void {
  try {
    process.kill(-child.pid!, 'SIGKILL');
  } catch {
    child.kill('SIGKILL');
  }
}

function tail(text: string, lines = 40): string {
  return text.split('\n').slice(-lines).join('\n');
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

function portsHcl(ports: AgentPorts): string {
  return `ports {
  http = ${ports.http}
  serf_lan = ${ports.serfLan}
  serf_wan = ${ports.serfWan}
  server = ${ports.server}
  dns = -1
  grpc = -1
  https = -1
}
`;
}

function aclHcl(token: string): string {
  return `acl {
  enabled = true
  default_policy = "deny"
  enable_token_persistence = false
  tokens {
    master = "${token}"
    agent = "${token}"
  }
}
`;
}

/** Raft and gossip timings for a one-machine test cluster: elections and failure detection in ~1 s. */
const FAST_TIMINGS = `performance {
  raft_multiplier = 1
}
gossip_lan {
  probe_interval = "200ms"
  probe_timeout = "100ms"
  gossip_interval = "100ms"
  suspicion_mult = 2
}
`;

export interface DevAgentOptions {
  /** ACLs on, default deny, with this management token (also the agent token). */
  aclToken?: string;
}

export interface DevAgent extends ConsulAgent {
  /** SIGKILL and remove its folder. */
  close(): Promise<void>;
  /** A dev agent forgets everything on restart, as `consul agent -dev` does. */
  restart(): Promise<void>;
}

/** A single `consul agent -dev` (server and client in one, data in memory). */
export async function startDevAgent(options: DevAgentOptions = {}): Promise<DevAgent> {
  const dir = mkdtempSync(join(tmpdir(), 'peerlb-consul-'));
  const token = options.aclToken;
  try {
    const agent = await launchAgent({
      name: 'dev',
      dir,
      args: ['-dev'],
      hcl: (_host, ports) => `${portsHcl(ports)}${token ? aclHcl(token) : ''}log_level = "info"\n`,
      readyHeaders: token ? { 'X-Consul-Token': token } : {},
      // Writes need a leader; with ACLs, the leader must also have set the ACL system up.
      ready: async (a) => (await hasLeader(a.url)) && (!token || (await tokenWorks(a.url, token))),
    });
    return Object.assign(agent, {
      async close() {
        await agent.kill();
        rmSync(dir, { recursive: true, force: true });
      },
      async restart() {
        await agent.kill();
        await agent.start();
      },
    }) as DevAgent;
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}

export interface ConsulCluster {
  readonly servers: readonly ConsulAgent[];
  readonly clients: readonly ConsulAgent[];
  /** True when some reachable server reports a leader. */
  hasLeader(): Promise<boolean>;
  /** Waits until a leader is elected and every running agent sees every running agent alive. */
  settled(timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

/** `servers` server agents (bootstrap-expect = servers) and `clients` client agents, joined. */
export async function startCluster(options: { servers?: number; clients?: number } = {}): Promise<ConsulCluster> {
  const serverCount = options.servers ?? 3;
  const clientCount = options.clients ?? 2;
  const dir = mkdtempSync(join(tmpdir(), 'peerlb-consul-cluster-'));
  const servers: ConsulAgent[] = [];
  const clients: ConsulAgent[] = [];
  const all = () => [...servers, ...clients];
  const close = async () => {
    await Promise.all(all().map((a) => a.kill()));
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const joinAddrs: string[] = [];
    const retryJoin = () => JSON.stringify(joinAddrs);
    // A fixed node id: an agent that lost its data dir comes back as the same node.
    const common = (name: string, ports: AgentPorts, host: string) =>
      `${portsHcl(ports)}${FAST_TIMINGS}data_dir = "${join(dir, name)}"
node_id = "${randomUUID()}"
datacenter = "dc1"
log_level = "info"
disable_update_check = true
leave_on_terminate = false
retry_join = ${retryJoin()}
retry_interval = "1s"
advertise_addr = "${host}"
`;
    // Started one at a time so each later agent knows where to join; servers need no leader to start.
    for (let i = 0; i < serverCount; i++) {
      const name = `server-${i + 1}`;
      const agent = await launchAgent({
        name,
        dir,
        dataDir: join(dir, name),
        args: [],
        hcl: (host, ports) => `${common(name, ports, host)}server = true\nbootstrap_expect = ${serverCount}\n`,
      });
      servers.push(agent);
      joinAddrs.push(`${agent.host}:${agent.ports.serfLan}`);
    }
    for (let i = 0; i < clientCount; i++) {
      const name = `client-${i + 1}`;
      clients.push(
        await launchAgent({ name, dir, dataDir: join(dir, name), args: [], hcl: (host, ports) => `${common(name, ports, host)}server = false\n` }),
      );
    }
    const cluster: ConsulCluster = {
      servers,
      clients,
      async hasLeader() {
        for (const s of servers) if (s.running && (await hasLeader(s.url))) return true;
        return false;
      },
      async settled(timeoutMs = 30_000) {
        const deadline = Date.now() + timeoutMs;
        for (;;) {
          if ((await cluster.hasLeader()) && (await allAlive(all()))) return;
          if (Date.now() > deadline) {
            throw new Error(`consul cluster not settled within ${timeoutMs} ms:\n${all().map((a) => `--- ${a.name}\n${tail(a.log(), 15)}`).join('\n')}`);
          }
          await sleep(200);
        }
      },
      close,
    };
    await cluster.settled();
    return cluster;
  } catch (err) {
    await close();
    throw err;
  }
}

async function getJson(url: string, token?: string): Promise<{ status: number; body: unknown }> {
  const res = await fetch(url, { signal: AbortSignal.timeout(2_000), headers: token ? { 'X-Consul-Token': token } : {} });
  const text = await res.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    // plain-text error bodies stay text
  }
  return { status: res.status, body };
}

async function hasLeader(url: string): Promise<boolean> {
  try {
    const { status, body } = await getJson(`${url}/v1/status/leader`);
    return status === 200 && typeof body === 'string' && body !== '';
  } catch {
    return false;
  }
}

async function tokenWorks(url: string, token: string): Promise<boolean> {
  try {
    return (await getJson(`${url}/v1/acl/token/self`, token)).status === 200;
  } catch {
    return false;
  }
}

/** Every running agent lists every running agent as alive (serf status 1). */
async function allAlive(agents: ConsulAgent[]): Promise<boolean> {
  const running = agents.filter((a) => a.running);
  for (const agent of running) {
    try {
      const { status, body } = await getJson(`${agent.url}/v1/agent/members`);
      if (status !== 200 || !Array.isArray(body)) return false;
      const alive = new Set((body as Array<{ Name: string; Status: number }>).filter((m) => m.Status === 1).map((m) => m.Name));
      if (!running.every((a) => alive.has(a.name))) return false;
    } catch {
      return false;
    }
  }
  return true;
}

/** A fresh management-style token value for an ACL-enabled dev agent. */
export function newToken(): string {
  return randomUUID();
}
