import { isActionName, isBackendName, type ActionName } from '../actions.js';
import type { BackendName } from '../protocol.js';

/** A button press, checked: what the server will do, and to what. */
export type ActionRequest =
  | { action: Exclude<ActionName, 'start' | 'slow'>; instance: string }
  | { action: 'slow'; instance: string; ms: number }
  | { action: 'start'; service: BackendName };

/** A request the view refuses, with the status and the JSON it answers. */
export class ActionProblem extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly field?: string,
  ) {
    super(message);
    this.name = 'ActionProblem';
  }

  toJSON(): { error: { code: string; message: string; field?: string } } {
    return { error: { code: this.code, message: this.message, ...(this.field ? { field: this.field } : {}) } };
  }
}

export const MAX_ACTION_BODY_BYTES = 4_096;
const MAX_SLOW_MS = 10_000;
// Instance ids of the registry contract: letters, digits and `_ . : -`, 1..128 chars.
const INSTANCE_ID = /^[A-Za-z0-9_.:-]{1,128}$/;

/** The JSON body of `POST /api/action`, validated field by field. */
export function parseActionRequest(text: string): ActionRequest {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw new ActionProblem(400, 'BAD_JSON', 'the body is not JSON');
  }
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw new ActionProblem(400, 'BAD_REQUEST', 'the body must be a JSON object');
  }
  const b = body as Record<string, unknown>;
  const known = new Set(['action', 'instance', 'service', 'ms']);
  for (const key of Object.keys(b)) {
    if (!known.has(key)) throw new ActionProblem(400, 'BAD_REQUEST', `unknown field ${JSON.stringify(key)}`, key);
  }
  if (!isActionName(b.action)) {
    throw new ActionProblem(400, 'BAD_REQUEST', 'action must be one of kill, stop, slow, unhealthy, healthy, start', 'action');
  }
  if (b.action === 'start') {
    if (!isBackendName(b.service)) {
      throw new ActionProblem(400, 'BAD_REQUEST', 'service must be one of pricing, inventory, catalog, orders', 'service');
    }
    return { action: 'start', service: b.service };
  }
  if (typeof b.instance !== 'string' || !INSTANCE_ID.test(b.instance)) {
    throw new ActionProblem(400, 'BAD_REQUEST', 'instance must be an instance id', 'instance');
  }
  if (b.action === 'slow') {
    const ms = b.ms ?? 200;
    if (typeof ms !== 'number' || !Number.isInteger(ms) || ms < 0 || ms > MAX_SLOW_MS) {
      throw new ActionProblem(400, 'BAD_REQUEST', `ms must be an integer in 0..${MAX_SLOW_MS}`, 'ms');
    }
    return { action: 'slow', instance: b.instance, ms };
  }
  return { action: b.action, instance: b.instance };
}
