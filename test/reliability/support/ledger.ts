import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';

/** How often each POST id was executed, over every instance's ledger file in `dir`. */
export async function readLedgers(dir: string): Promise<Map<string, number>> {
  const counts = new Map<string, number>();
  for (const name of await readdir(dir)) {
    if (!name.startsWith('ledger-')) continue;
    const text = await readFile(join(dir, name), 'utf8');
    for (const id of text.split('\n')) if (id !== '') counts.set(id, (counts.get(id) ?? 0) + 1);
  }
  return counts;
}

/** The POST ids the client saw acknowledged (201), written by the load generator at the end. */
export async function readAcked(file: string): Promise<string[]> {
  const text = await readFile(file, 'utf8').catch(() => '');
  return text.split('\n').filter((id) => id !== '');
}
