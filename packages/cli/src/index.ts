export { runCli } from './main.js';
export { EXIT, CliError, UsageError } from './errors.js';
export type { ExitCode } from './errors.js';
export type { CliIo, Output } from './io.js';
export { USAGE } from './args.js';
