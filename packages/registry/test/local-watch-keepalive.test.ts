import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';

const repoRoot = fileURLToPath(new URL('../../..', import.meta.url));
const script = fileURLToPath(new URL('./fixtures/first-watch.mjs', import.meta.url));
let dir: string | undefined;

afterEach(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('issue 17: a watch waiting for its first answer keeps the process alive', () => {
  it('a program that only awaits the first answer of a local-registry watch gets it and exits 0', async () => {
    dir = await mkdtemp(join(tmpdir(), 'peerlb-first-watch-'));
    const child = spawn(process.execPath, [script, join(dir, 'registry')], {
      cwd: repoRoot,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (out += c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (out += c));
    const code = await new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c)));
    // Before the fix: exit code 13 (top-level await never settled), nothing printed.
    expect({ code, out }).toEqual({ code: 0, out: 'first update ok=true\n' });
  });
});
