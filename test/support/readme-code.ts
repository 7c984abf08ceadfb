/** Code samples of a README, so tests can run them as written. */

/**
 * The first JavaScript/TypeScript code block under the README's "Quick start" heading, or
 * undefined when there is none (a package whose quick start is a shell command).
 */
export function quickStartCode(markdown: string): string | undefined {
  const section = /^## Quick start\s*$([\s\S]*?)(?=^## )/m.exec(`${markdown}\n## end`);
  if (!section) return undefined;
  const block = /^```(?:js|javascript|ts|typescript)\s*\n([\s\S]*?)^```\s*$/m.exec(section[1]!);
  return block?.[1];
}
