import { AsyncLocalStorage } from 'node:async_hooks';
import type { RequestDeadline } from './request-deadline.js';

/**
 * The deadline of the request being handled, carried through its async work by one
 * AsyncLocalStorage. The serving side (`@peerlb/registration`) sets it; the client
 * (`@peerlb/client`) reads it for every call made while handling that request.
 *
 * Why a package of its own: both ends must see the very same storage, so it lives below both in
 * a package with no dependencies, next to the header it is read from. `@peerlb/registry` is about
 * finding instances and `@peerlb/rate-limit` about counting callers; neither should grow a request
 * context. The storage is also kept under a global symbol, so two copies of this package in one
 * process (two versions installed side by side) still share it: a context the serving side set
 * would otherwise be invisible to a client that loaded the other copy. What the client reads of
 * it (`expiresAt`, `signal`) is the stable part of `RequestDeadline`.
 *
 * The storage is made on first `runWithDeadline`, not on import: a process that never serves a
 * request with a deadline never pays for AsyncLocalStorage.
 */
const STORAGE_KEY = Symbol.for('peerlb.deadline.storage');

type Holder = { [STORAGE_KEY]?: AsyncLocalStorage<RequestDeadline | undefined> };

function storage(): AsyncLocalStorage<RequestDeadline | undefined> {
  const holder = globalThis as Holder;
  return (holder[STORAGE_KEY] ??= new AsyncLocalStorage<RequestDeadline | undefined>());
}

/** The deadline of the request being handled here, if it has one. */
export function currentDeadline(): RequestDeadline | undefined {
  return (globalThis as Holder)[STORAGE_KEY]?.getStore();
}

/**
 * Runs `fn` (and all async work it starts) with `deadline` as the current one. `undefined` runs it
 * with none: for background work that must not inherit the request's deadline.
 */
export function runWithDeadline<T>(deadline: RequestDeadline | undefined, fn: () => T): T {
  return storage().run(deadline, fn);
}

/** Milliseconds left for the request being handled here, or `undefined` outside one with a deadline. */
export function timeLeftMs(): number | undefined {
  return currentDeadline()?.timeLeftMs();
}
