import type { Writable } from 'node:stream';

/**
 * Keeps output failures from ending the supervisor. `pnpm mesh | tee mesh.log` and Ctrl-C: the
 * terminal's SIGINT ends `tee` too, and the next line we print fails with EPIPE. Unhandled, that
 * error crashed the supervisor mid-shutdown, and its exit hook SIGKILLed every draining instance.
 * Output is only a report: once a stream fails, later writes to it are dropped (the stream is
 * destroyed, so they cannot block either), the failure is said once on the other stream if that
 * one still works, and the shutdown goes on; the exit code stays the shutdown's own verdict.
 */
export function guardOutput(streams: { stdout: Writable; stderr: Writable }): void {
  const failed = new Set<Writable>();
  const guard = (stream: Writable, name: string, other: Writable): void => {
    stream.on('error', (err: NodeJS.ErrnoException) => {
      if (failed.has(stream)) return;
      failed.add(stream);
      if (failed.has(other)) return;
      try {
        other.write(`[mesh] ${name} closed (${err.code ?? err.message}): its output is dropped, the mesh goes on\n`);
      } catch {
        // Nowhere left to say it.
      }
    });
  };
  guard(streams.stdout, 'stdout', streams.stderr);
  guard(streams.stderr, 'stderr', streams.stdout);
}
