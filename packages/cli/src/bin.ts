#!/usr/bin/env node
// `peerlb`: the command line. Everything is in runCli; this file only binds it to the process.
import { runCli } from './main.js';

const stop = new AbortController();
let interrupted = false;
const onSignal = (): void => {
  // A second Ctrl-C does not wait for a clean end.
  if (interrupted) process.exit(130);
  interrupted = true;
  stop.abort();
};
process.on('SIGINT', onSignal);
process.on('SIGTERM', onSignal);
// `peerlb ... | head` closes the pipe early: not an error worth a stack trace.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(0);
});

// The library unrefs its timers and file watchers so they never keep a program alive; but while
// `--watch` waits for a change they are all there is, and Node would end the process mid-command.
// This handle holds it open until the command is done.
const keepAlive = setInterval(() => {}, 60_000);
let code: number;
try {
  code = await runCli(process.argv.slice(2), {
    stdout: process.stdout,
    stderr: process.stderr,
    env: process.env,
    signal: stop.signal,
  });
} finally {
  clearInterval(keepAlive);
}
process.exitCode = code;
process.off('SIGINT', onSignal);
process.off('SIGTERM', onSignal);
