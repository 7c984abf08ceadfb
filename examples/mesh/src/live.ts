import { Agent } from 'node:http';
import type { CliArgs } from './args.js';
import { meshFromArgs } from './mesh.js';
import { ALL_SERVICES, takeSnapshot, type MeshSnapshot } from './observe.js';
import { prepareRegistry } from './registry-env.js';
import { finishShutdown, installShutdown, type Shutdown } from './shutdown.js';
import { renderView } from './view.js';
import { WebView } from './web/web-server.js';

const TTY_REFRESH_MS = 1_000;
// Without a terminal (CI logs, a file) the view is printed as plain lines, much less often.
const PLAIN_REFRESH_MS = 15_000;
const RECENT_EVENTS = 6;

/** `pnpm mesh`: start everything, show the live view, stop everything cleanly on Ctrl-C. */
export async function runLive(args: CliArgs): Promise<number> {
  const out = process.stdout;
  const tty = out.isTTY === true;
  const recent: string[] = [];
  let viewActive = false;
  let web: WebView | undefined;
  // What happened before the browser view started, for its timeline.
  const early: Array<{ at: number; text: string }> = [];
  const log = (message: string): void => {
    if (web) web.model.note(message);
    else if (early.push({ at: Date.now(), text: message }) > 40) early.shift();
    const line = `${new Date().toISOString().slice(11, 19)} ${message}`;
    recent.push(line);
    if (recent.length > RECENT_EVENTS) recent.shift();
    // While the live view owns the terminal, events show in its RECENT section instead.
    if (!viewActive || !tty) out.write(`[mesh] ${line}\n`);
  };

  const reg = await prepareRegistry(process.env, { warn: (m) => log(`registry: ${m}`) });
  const mesh = meshFromArgs(args, reg, log);
  const registryName = reg.kind === 'local' ? `local (${reg.where})` : `consul (${reg.where})`;
  log(`registry: ${registryName}; starting ${args.instances} instance(s) of each backend and the gateway`);

  let timer: NodeJS.Timeout | undefined;
  const stopView = (): void => {
    if (timer) clearTimeout(timer);
    timer = undefined;
    if (viewActive && tty) out.write('\n');
    viewActive = false;
  };
  const shutdown: Shutdown = installShutdown(mesh, {
    registry: reg,
    drainMs: args.drainMs, log: (m) => out.write(`[mesh] ${m}\n`), beforeStop: stopView });

  try {
    await Promise.race([mesh.start(), shutdown.requested]);
  } catch (err) {
    out.write(`[mesh] could not start the mesh: ${(err as Error).message}\n`);
    return finishShutdown(shutdown.request('startup failed', 1));
  }
  if (shutdown.isRequested) return finishShutdown(shutdown.done);

  const gatewayUrl = mesh.gateway?.info?.url;
  const startedAt = Date.now();
  if (args.webPort !== undefined) {
    try {
      web = await WebView.start({
        mesh,
        registry: reg.registry,
        port: args.webPort,
        registryName,
        gatewayUrl: gatewayUrl ?? null,
        startedAt,
        services: ALL_SERVICES,
      });
      for (const e of early) web.model.note(e.text, e.at);
    } catch (err) {
      log(`browser view: could not start: ${(err as Error).message}`);
    }
  }
  out.write(
    `\n[mesh] gateway: ${gatewayUrl}\n` +
      (web ? `[mesh] browser view: ${web.url}   (live picture; kill, stop, slow down, make unhealthy, start one more)\n` : '') +
      `[mesh] try:  curl ${gatewayUrl}/api/products/tea-001\n` +
      `[mesh]       curl '${gatewayUrl}/api/quote?sku=pot-001&qty=2'\n` +
      `[mesh]       curl '${gatewayUrl}/limited?caller=alice'   (a burst over the per-user rate limit)\n` +
      `[mesh] CLI:  ${reg.kind === 'local' ? `PEERLB_REGISTRY_DIR=${reg.where} ` : ''}pnpm peerlb services   (instances <service>, call <service> <path>)\n` +
      `[mesh] Ctrl-C stops everything.\n\n`,
  );

  const agent = new Agent({ keepAlive: true, maxSockets: 4 });
  const header = {
    registry: registryName,
    gatewayUrl,
    startedAt,
    hint: tty ? 'Ctrl-C to stop' : '',
  };
  let previous: MeshSnapshot | undefined;
  viewActive = true;
  if (tty) out.write('\x1b[2J');
  const refresh = async (): Promise<void> => {
    try {
      const snap = await takeSnapshot(mesh.procs, reg.registry, { timeoutMs: 900, agent });
      if (!viewActive) return;
      const width = tty ? Math.max(60, out.columns ?? 120) : 160;
      const lines = renderView(snap, previous, header, tty ? recent : [], width);
      previous = snap;
      if (tty) {
        // Home, then each line cleared to its end, then everything below: no flicker.
        out.write(`\x1b[H${lines.map((l) => `${l}\x1b[K`).join('\n')}\n\x1b[J`);
      } else {
        out.write(`${lines.map((l) => `[view] ${l}`).join('\n')}\n`);
      }
    } catch (err) {
      // A view that cannot be drawn once must not take the mesh down.
      log(`live view: ${(err as Error).message}`);
    }
    if (viewActive) timer = setTimeout(() => void refresh(), tty ? TTY_REFRESH_MS : PLAIN_REFRESH_MS);
  };
  await refresh();

  const code = await finishShutdown(shutdown.done);
  await web?.close();
  agent.destroy();
  return code;
}
