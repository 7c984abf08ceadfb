import { describe, expect, it } from 'vitest';
import { parseCliArgs } from '../src/args.js';
import { UsageError } from '../src/errors.js';

describe('peerlb command line', () => {
  it('parses call with curl-like options', () => {
    expect(
      parseCliArgs(['call', 'orders', '/orders', '-X', 'post', '-d', '{"a":1}', '-H', 'Content-Type: application/json', '-H', 'x-a: 1', '-H', 'X-A: 2', '-n', '5', '-c', '2', '--json']),
    ).toEqual({
      command: 'call',
      service: 'orders',
      path: '/orders',
      method: 'POST',
      body: '{"a":1}',
      headers: { 'content-type': 'application/json', 'x-a': '1, 2' },
      count: 5,
      concurrency: 2,
      caller: 'peerlb-cli',
      json: true,
      timeoutMs: 10_000,
    });
  });

  it('parses services and instances --watch', () => {
    expect(parseCliArgs(['services', '--timeout', '500'])).toEqual({ command: 'services', json: false, timeoutMs: 500 });
    expect(parseCliArgs(['instances', 'catalog', '-w'])).toMatchObject({ command: 'instances', service: 'catalog', watch: true });
    expect(parseCliArgs(['instances', 'catalog', '--help'])).toEqual({ command: 'help' });
  });

  it.each([
    [[], /missing command/],
    [['nope'], /unknown command "nope"/],
    [['services', 'extra'], /unexpected argument "extra"/],
    [['instances'], /missing <service>/],
    [['call', 'catalog', 'products'], /<path> must start with "\/"/],
    [['call', 'catalog', '/', '--count', '1.5'], /--count must be an integer in 1\.\./],
    [['call', 'catalog', '/', '-c', '4'], /--concurrency needs --count/],
    [['call', 'catalog', '/', '-H', 'no-colon'], /-H must be "Name: value"/],
    [['services', '--timeout', '0'], /--timeout must be an integer/],
    [['services', '--verbose'], /Unknown option '--verbose'/],
  ])('refuses %j with a usage error', (argv, message) => {
    expect(() => parseCliArgs(argv)).toThrow(UsageError);
    expect(() => parseCliArgs(argv)).toThrow(message);
  });
});
