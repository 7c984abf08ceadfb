import { registryFromEnv } from '@peerlb/registry';
import { createClient, type Client } from './client.js';
import type { BalancedResponse } from './request/request-call.js';
import type { RequestOptions } from './call/request-options.js';

let defaultClient: Client | undefined;

/**
 * The client behind `balancedRequest`, built on first use from the environment: its registry is
 * `registryFromEnv()` (Consul when `CONSUL_HTTP_ADDR` is set, else the local registry in
 * `PEERLB_REGISTRY_DIR` or the per-user default directory), every other option at its default.
 * Importing this package reads no environment and opens nothing.
 */
export function getDefaultClient(): Client {
  if (defaultClient === undefined || defaultClient.closed) {
    defaultClient = createClient({ registry: registryFromEnv(), closeRegistry: true });
  }
  return defaultClient;
}

/**
 * Sends one request through the default client (created on first use from the environment).
 * Same options and result as `client.request()`.
 */
export function balancedRequest(options: RequestOptions): Promise<BalancedResponse> {
  let client: Client;
  try {
    client = getDefaultClient();
  } catch (err) {
    return Promise.reject(err);
  }
  return client.request(options);
}

/** Closes the default client and its registry, if one was created. The next call creates a new one. */
export async function closeDefaultClient(): Promise<void> {
  const client = defaultClient;
  defaultClient = undefined;
  await client?.close();
}
