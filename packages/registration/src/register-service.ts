import { RegistrationHandle, type ServiceHandle } from './handle.js';
import { createInstanceId } from './instance-id.js';
import { normaliseRegisterOptions, type RegisterServiceOptions } from './options.js';
import { Registration } from './registration.js';

/**
 * Registers an instance that already listens on `port` and keeps it registered: heartbeats while
 * its health function passes, registers again when the registry forgets it. Resolves once the
 * registry accepted it; rejects with `RegistrationFailedError` after `startupTimeoutMs` of failed
 * attempts, leaving nothing registered. Installs no process handlers: call `close()` yourself.
 */
export async function registerService(options: RegisterServiceOptions): Promise<ServiceHandle> {
  const { config, port } = normaliseRegisterOptions(options, createInstanceId);
  const registration = new Registration(config);
  await registration.start(port, config.signal);
  return new RegistrationHandle(
    registration,
    port,
    async () => {
      registration.markDraining();
      await registration.leave();
      await registration.finish();
    },
    config.signal,
  );
}
