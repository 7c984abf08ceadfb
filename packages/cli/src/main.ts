import { USAGE, parseCliArgs, type CliArgs } from './args.js';
import { callCommand } from './commands/call.js';
import { instancesCommand } from './commands/instances.js';
import { servicesCommand } from './commands/services.js';
import { CliError, EXIT, UsageError, toCliError } from './errors.js';
import { openRegistryFromEnv, type CliIo } from './io.js';

/**
 * Runs one `peerlb` command line and resolves with its exit code; never throws. Errors are one
 * line on stderr (`peerlb: ...`), or with `--json` a `{"error":{"code","message"}}` line on stdout.
 */
export async function runCli(argv: readonly string[], io: CliIo): Promise<number> {
  let args: CliArgs;
  try {
    args = parseCliArgs(argv);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    io.stderr.write(`peerlb: ${err.message}\n\n${USAGE}`);
    return EXIT.usage;
  }
  if (args.command === 'help') {
    io.stdout.write(USAGE);
    return EXIT.ok;
  }
  let opened;
  try {
    opened = openRegistryFromEnv(io.env);
  } catch (err) {
    // The environment names a registry badly (e.g. a malformed CONSUL_HTTP_ADDR).
    return report(toCliError(err, { registry: 'the registry of the environment' }), args.json, io);
  }
  try {
    switch (args.command) {
      case 'services':
        return await servicesCommand(args, opened, io);
      case 'instances':
        return await instancesCommand(args, opened, io);
      case 'call':
        return await callCommand(args, opened, io);
    }
  } catch (err) {
    if (io.signal.aborted) {
      return report(new CliError('PEERLB_CLI_INTERRUPTED', 'interrupted', EXIT.interrupted), args.json, io);
    }
    const service = args.command === 'services' ? undefined : args.service;
    return report(toCliError(err, { ...(service ? { service } : {}), registry: opened.description }), args.json, io);
  } finally {
    await opened.registry.close().catch(() => {});
  }
}

function report(err: ReturnType<typeof toCliError>, json: boolean, io: CliIo): number {
  if (json) io.stdout.write(`${JSON.stringify({ error: { code: err.code, message: err.message } })}\n`);
  else io.stderr.write(`peerlb: ${err.message}\n`);
  return err.exitCode;
}
