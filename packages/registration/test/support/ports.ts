import { createServer, type Server } from 'node:net';

export interface Blocker {
  port: number;
  close(): Promise<void>;
}

export function block(port: number, host = '127.0.0.1'): Promise<Blocker> {
  return new Promise((resolve, reject) => {
    const server: Server = createServer();
    server.once('error', reject);
    server.listen(port, host, () => {
      resolve({ port, close: () => new Promise<void>((r) => server.close(() => r())) });
    });
  });
}

/**
 * `size` consecutive ports below the OS's ephemeral range, all free right now. Random base so
 * parallel test files do not pick the same one.
 */
export async function freeRange(size: number): Promise<{ start: number; end: number }> {
  for (let tries = 0; tries < 50; tries++) {
    const start = 20_000 + Math.floor(Math.random() * 10_000);
    const held: Blocker[] = [];
    try {
      for (let p = start; p < start + size; p++) held.push(await block(p, '0.0.0.0'));
      return { start, end: start + size - 1 };
    } catch {
      // One port was taken; try another base.
    } finally {
      await Promise.all(held.map((b) => b.close()));
    }
  }
  throw new Error('no free port range found');
}
