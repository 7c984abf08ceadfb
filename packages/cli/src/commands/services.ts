import type { CommonArgs } from '../args.js';
import { CliError, EXIT } from '../errors.js';
import { table } from '../format.js';
import type { CliIo, OpenedRegistry } from '../io.js';

/** `peerlb services`: every service with a registered instance, and how many are healthy. */
export async function servicesCommand(args: CommonArgs, { registry, description }: OpenedRegistry, io: CliIo): Promise<number> {
  if (registry.services === undefined) {
    throw new CliError('PEERLB_CLI_UNSUPPORTED', `the ${registry.kind} registry cannot list its services`, EXIT.registryUnavailable);
  }
  const signal = AbortSignal.any([io.signal, AbortSignal.timeout(args.timeoutMs)]);
  const names = await registry.services({ signal });
  const services = await Promise.all(
    names.map(async (service) => ({ service, healthy: (await registry.list(service, { signal })).length })),
  );
  if (args.json) {
    io.stdout.write(`${JSON.stringify({ registry: description, services })}\n`);
  } else if (services.length === 0) {
    io.stdout.write(`no services in ${description}\n`);
  } else {
    io.stdout.write(`${table([['SERVICE', 'HEALTHY'], ...services.map((s) => [s.service, String(s.healthy)])])}\n`);
  }
  return EXIT.ok;
}
