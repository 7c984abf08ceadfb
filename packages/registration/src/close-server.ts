import type { Server } from 'node:http';

/**
 * Stops accepting connections and resolves once every connection is gone. Idle keep-alive
 * connections are closed at once and again every 50 ms (a connection whose last request just
 * finished becomes idle only then); after `closeTimeoutMs`, whatever is left is destroyed.
 */
export function closeServer(server: Server, closeTimeoutMs: number): Promise<void> {
  return new Promise((resolve) => {
    if (!server.listening) {
      resolve();
      return;
    }
    const sweep = setInterval(() => server.closeIdleConnections?.(), 50);
    sweep.unref();
    const force = setTimeout(() => server.closeAllConnections?.(), closeTimeoutMs);
    force.unref();
    server.close(() => {
      clearInterval(sweep);
      clearTimeout(force);
      resolve();
    });
    server.closeIdleConnections?.();
  });
}
