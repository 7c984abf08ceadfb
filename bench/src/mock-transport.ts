import { Readable } from 'node:stream';
import { finished } from 'node:stream/promises';
import type { Dispatcher } from 'undici';
import type { TransportFactory } from '@peerlb/client';

/**
 * An in-process transport for the client (its public `transportFactory` option): every request
 * is answered at once with 200 and a two-byte body, without a socket. It isolates the client's
 * own work (validation, rate limit, pick, breaker, bookkeeping) from the network, for scenarios
 * whose question is not the network: 10,000 peers, 100,000 callers.
 */
class MockBody extends Readable {
  private sent = false;

  override _read(): void {
    if (!this.sent) {
      this.sent = true;
      this.push(PAYLOAD);
    }
    this.push(null);
  }

  async text(): Promise<string> {
    let text = '';
    for await (const chunk of this) text += String(chunk);
    return text;
  }

  async dump(): Promise<void> {
    this.resume();
    await finished(this);
  }
}

const PAYLOAD = Buffer.from('ok');
const HEADERS = Object.freeze({ 'content-type': 'text/plain', 'content-length': '2' });

class MockDispatcher {
  /** Dispatchers the factory created: pools are created lazily, one per peer used. */
  static created = 0;

  constructor() {
    MockDispatcher.created++;
  }

  /** Both of undici's call styles: a promise, or a callback (what the client uses). */
  request(
    _options?: unknown,
    callback?: (err: Error | null, data: Dispatcher.ResponseData) => void,
  ): Promise<Dispatcher.ResponseData> | void {
    const response: Dispatcher.ResponseData = {
      statusCode: 200,
      statusText: 'OK',
      headers: HEADERS,
      body: new MockBody() as unknown as Dispatcher.ResponseData['body'],
      trailers: {},
      opaque: null,
      context: {},
    } as Dispatcher.ResponseData;
    if (callback === undefined) return Promise.resolve(response);
    queueMicrotask(() => callback(null, response));
  }

  close(): Promise<void> {
    return Promise.resolve();
  }

  destroy(): Promise<void> {
    return Promise.resolve();
  }
}

export const mockTransport: TransportFactory = () => new MockDispatcher() as unknown as Dispatcher;

export function mockDispatchersCreated(): number {
  return MockDispatcher.created;
}
