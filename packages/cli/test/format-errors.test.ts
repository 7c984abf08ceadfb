import { DeadlineError, NoPeersError } from '@peerlb/client';
import { InvalidOptionsError, RegistryUnavailableError } from '@peerlb/registry';
import { describe, expect, it } from 'vitest';
import { EXIT, toCliError } from '../src/errors.js';
import { percentile, progressBar, table } from '../src/format.js';

describe('peerlb output helpers', () => {
  it('percentile is the nearest rank', () => {
    const values = Array.from({ length: 100 }, (_, i) => i + 1);
    expect([percentile(values, 50), percentile(values, 90), percentile(values, 99), percentile(values, 100)]).toEqual([50, 90, 99, 100]);
    expect(percentile([7], 99)).toBe(7);
    expect(percentile([], 50)).toBeNaN();
  });

  it('table pads every column but the last', () => {
    expect(table([['A', 'BB', 'C'], ['aaa', 'b', 'cc']])).toBe('A    BB  C\naaa  b   cc');
  });

  it('progress bar fills with the work done', () => {
    expect(progressBar(5, 10, 10)).toBe('[#####.....]  5/10');
    expect(progressBar(10, 10, 4)).toBe('[####] 10/10');
  });
});

describe('exit codes of library errors', () => {
  const registry = 'local (/tmp/x)';
  it.each([
    [new NoPeersError('none', { service: 's', peersTried: [], reason: 'no-instances' }), EXIT.noInstances, 'PEERLB_NO_INSTANCES'],
    [new NoPeersError('down', { service: 's', peersTried: [], reason: 'registry-unavailable' }), EXIT.registryUnavailable, 'PEERLB_REGISTRY_UNAVAILABLE'],
    [new NoPeersError('busy', { service: 's', peersTried: [], reason: 'all-busy' }), EXIT.requestFailed, 'PEERLB_NO_PEERS'],
    [new RegistryUnavailableError('refused'), EXIT.registryUnavailable, 'PEERLB_REGISTRY_UNAVAILABLE'],
    [new DeadlineError({ service: 's', peersTried: [], timeoutMs: 10 }), EXIT.requestFailed, 'PEERLB_DEADLINE'],
    [new InvalidOptionsError('headers.x', 'bad'), EXIT.usage, 'PEERLB_INVALID_OPTIONS'],
    [new Error('boom'), EXIT.requestFailed, 'PEERLB_CLI_FAILED'],
  ])('%s', (err, exit, code) => {
    const e = toCliError(err, { registry });
    expect([e.exitCode, e.code]).toEqual([exit, code]);
  });
});
