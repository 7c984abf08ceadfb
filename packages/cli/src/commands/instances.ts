import type { ServiceInstance } from '@peerlb/registry';
import type { CommonArgs } from '../args.js';
import { EXIT, noInstances } from '../errors.js';
import { table } from '../format.js';
import type { CliIo, OpenedRegistry } from '../io.js';

export interface InstancesArgs extends CommonArgs {
  service: string;
  watch: boolean;
}

/** `peerlb instances <service> [--watch]`: the healthy instances now, or after every change until Ctrl-C. */
export async function instancesCommand(args: InstancesArgs, opened: OpenedRegistry, io: CliIo): Promise<number> {
  return args.watch ? watch(args, opened, io) : once(args, opened, io);
}

async function once(args: InstancesArgs, { registry, description }: OpenedRegistry, io: CliIo): Promise<number> {
  const signal = AbortSignal.any([io.signal, AbortSignal.timeout(args.timeoutMs)]);
  const instances = await registry.list(args.service, { signal });
  if (args.json) {
    io.stdout.write(`${JSON.stringify({ registry: description, service: args.service, instances })}\n`);
    return instances.length === 0 ? EXIT.noInstances : EXIT.ok;
  }
  if (instances.length === 0) throw noInstances(args.service, description);
  io.stdout.write(`${render(instances)}\n`);
  return EXIT.ok;
}

async function watch(args: InstancesArgs, { registry, description }: OpenedRegistry, io: CliIo): Promise<number> {
  const tty = io.stdout.isTTY === true && !args.json;
  const handle = registry.watch(args.service, (update) => {
    const at = new Date(update.at).toISOString();
    if (args.json) {
      const line = update.ok
        ? { at, registry: description, service: args.service, instances: update.instances }
        : { at, registry: description, service: args.service, error: { code: codeOf(update.error), message: update.error.message } };
      io.stdout.write(`${JSON.stringify(line)}\n`);
      return;
    }
    if (!update.ok) {
      // The watch keeps trying; the last list stays on screen.
      io.stderr.write(`${at} cannot read the registry (${description}): ${update.error.message}\n`);
      return;
    }
    const head = `${at} ${args.service}: ${update.instances.length} healthy instance(s) in ${description}`;
    const body = update.instances.length === 0 ? '(none)' : render(update.instances);
    // On a terminal the picture is redrawn in place; elsewhere each change is appended.
    io.stdout.write(tty ? `\x1b[H\x1b[2J${head}\n\n${body}\n\n(Ctrl-C to stop)\n` : `${head}\n${body}\n\n`);
  });
  try {
    await new Promise<void>((resolve) => {
      if (io.signal.aborted) resolve();
      else io.signal.addEventListener('abort', () => resolve(), { once: true });
    });
  } finally {
    handle.close();
  }
  return EXIT.ok;
}

function render(instances: readonly ServiceInstance[]): string {
  const rows = instances.map((i) => [
    i.id,
    i.address,
    String(i.port),
    i.tags.join(',') || '-',
    Object.entries(i.meta)
      .map(([k, v]) => `${k}=${v}`)
      .join(',') || '-',
  ]);
  return table([['ID', 'ADDRESS', 'PORT', 'TAGS', 'META'], ...rows]);
}

function codeOf(err: Error): string {
  const code = (err as { code?: unknown }).code;
  return typeof code === 'string' ? code : 'PEERLB_REGISTRY_UNAVAILABLE';
}
