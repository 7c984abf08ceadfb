import type { RegistryLogger } from './types.js';

/** Default logger: one line on stderr per warning. Adapters never pass secrets to it. */
export const consoleLogger: RegistryLogger = {
  warn(message, details) {
    if (details && Object.keys(details).length > 0) console.warn(`[peerlb] ${message}`, details);
    else console.warn(`[peerlb] ${message}`);
  },
};

export const silentLogger: RegistryLogger = { warn() {} };
