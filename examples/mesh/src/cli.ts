// `pnpm mesh [--demo] [options]`: the supervisor. Starts every instance of the shop in its own
// process, shows the live view (or runs the demo), and stops everything cleanly.
import { USAGE, UsageError, parseCliArgs } from './args.js';
import { runDemo } from './demo.js';
import { runLive } from './live.js';
import { guardOutput } from './output-guard.js';

async function main(): Promise<number> {
  guardOutput(process);
  let args;
  try {
    args = parseCliArgs(process.argv.slice(2));
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`${err.message}\n\n${USAGE}`);
      return 2;
    }
    throw err;
  }
  if (args.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  return args.demo ? runDemo(args) : runLive(args);
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`mesh: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    // The `exit` hook of the shutdown (if installed) SIGKILLs whatever still runs.
    process.exit(1);
  },
);
