// One mesh instance run as node:cluster workers (`pnpm mesh --workers N`): this process is the
// primary. Each worker runs instance.ts and registers as its own instance on its own port; this
// process forks, restarts and drains them (startService({ workers })) and tells the supervisor
// over IPC when all are registered, as a single instance would.
import cluster from 'node:cluster';
import { fileURLToPath } from 'node:url';
import { startService } from '@peerlb/registration';
import { registryFromEnv } from '@peerlb/registry';
import { isServiceName, type InstanceConfig, type InstanceMessage } from './protocol.js';

const config = JSON.parse(process.argv[2] ?? 'null') as InstanceConfig | null;
if (config === null || !isServiceName(config.service) || (config.workers ?? 1) < 2) {
  throw new Error('usage: node dist/instance-primary.js \'{"service":"catalog","label":"catalog#1","workers":2,...}\'');
}
const send = (message: InstanceMessage) => {
  if (process.send !== undefined && process.connected) process.send(message);
};
process.stdout.on('error', () => {});
process.stderr.on('error', () => {});

// The workers run the ordinary instance program with the same configuration.
cluster.setupPrimary({ exec: fileURLToPath(new URL('./instance.js', import.meta.url)), args: [JSON.stringify(config)] });

// If the supervisor dies, leave: SIGTERM drains every worker (see startService).
process.on('disconnect', () => process.kill(process.pid, 'SIGTERM'));

try {
  const registry = registryFromEnv();
  const started = await startService({
    service: config.service,
    workers: config.workers!,
    registry,
    // Only the workers serve; the primary never listens.
    handler: () => {},
    drainMs: config.drainMs,
    ...(config.portRange ? { portRange: config.portRange } : { port: 0 }),
  });
  if (!('primary' in started)) throw new Error('expected to run as the cluster primary');
  started.on('worker-restart', (w, { delayMs }) => process.stdout.write(`worker ${w.index} died; restarting in ${delayMs} ms\n`));
  started.on('closed', () => void registry.close());
  const first = started.workers()[0]!;
  send({
    type: 'ready',
    id: first.id!,
    service: config.service,
    port: first.port!,
    url: first.url!,
    pid: process.pid,
    registeredAt: Date.now(),
  });
} catch (err) {
  const message = err instanceof Error ? err.message : String(err);
  process.stderr.write(`${config.label}: could not start its workers: ${message}\n`);
  send({ type: 'failed', message });
  process.exitCode = 1;
}
