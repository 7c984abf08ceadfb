// Decoding of Consul request bodies the way the agent's Go code does it: encoding/json field
// matching (case-insensitive, plus Consul's snake_case aliases), Go type errors as 400s, and
// durations as Go strings or bare nanoseconds.
import { parseGoDuration } from './go-duration.js';

/** A request Consul would answer with 400 and this text. */
export class BadRequest extends Error {}

/** Go's encoding/json matches field names case-insensitively, and Consul adds snake_case aliases. */
export function field(obj: Record<string, unknown>, name: string): unknown {
  const want = name.toLowerCase();
  let found: unknown;
  for (const [key, value] of Object.entries(obj)) {
    if (key.toLowerCase().replaceAll('_', '') === want) found = value;
  }
  return found === null ? undefined : found;
}

export function jsonKind(value: unknown): string {
  if (Array.isArray(value)) return 'array';
  if (typeof value === 'boolean') return 'bool';
  return typeof value;
}

export function decodeFailure(value: unknown, path: string, goType: string): BadRequest {
  return new BadRequest(`Request decode failed: json: cannot unmarshal ${jsonKind(value)} into Go struct field ${path} of type ${goType}`);
}

export function str(obj: Record<string, unknown>, name: string, ctx: string): string {
  const v = field(obj, name);
  if (v === undefined) return '';
  if (typeof v !== 'string') throw decodeFailure(v, `${ctx}.${name}`, 'string');
  return v;
}

export function bool(obj: Record<string, unknown>, name: string, ctx: string): boolean {
  const v = field(obj, name);
  if (v === undefined) return false;
  if (typeof v !== 'boolean') throw decodeFailure(v, `${ctx}.${name}`, 'bool');
  return v;
}

export function int(obj: Record<string, unknown>, name: string, ctx: string): number {
  const v = field(obj, name);
  if (v === undefined) return 0;
  if (typeof v !== 'number' || !Number.isInteger(v)) throw decodeFailure(v, `${ctx}.${name}`, 'int');
  return v;
}

export function record(v: unknown, path: string, goType: string): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw decodeFailure(v, path, goType);
  return v as Record<string, unknown>;
}

export function stringList(v: unknown, path: string): string[] {
  if (v === undefined) return [];
  if (!Array.isArray(v)) throw decodeFailure(v, path, '[]string');
  return v.map((item) => {
    if (typeof item !== 'string') throw decodeFailure(item, path, 'string');
    return item;
  });
}

export function stringMap(v: unknown, path: string): Record<string, string> {
  if (v === undefined) return {};
  const obj = record(v, path, 'map[string]string');
  const out: Record<string, string> = {};
  for (const [k, item] of Object.entries(obj)) {
    if (typeof item !== 'string') throw decodeFailure(item, path, 'string');
    out[k] = item;
  }
  return out;
}

/** CheckType.UnmarshalJSON: a string is a Go duration, a number is nanoseconds, anything else is ignored. */
export function duration(obj: Record<string, unknown>, name: string): number {
  const v = field(obj, name);
  if (typeof v === 'number') return Math.round(v);
  if (typeof v !== 'string') return 0;
  try {
    return parseGoDuration(v);
  } catch (err) {
    throw new BadRequest(`Request decode failed: ${(err as Error).message}`);
  }
}

const META_KEY = /^[a-zA-Z0-9_-]+$/;

export function validateMeta(meta: Record<string, string>): void {
  const entries = Object.entries(meta);
  if (entries.length > 64) throw new BadRequest('Invalid Service Meta: Node metadata cannot contain more than 64 key/value pairs');
  for (const [key, value] of entries) {
    let why: string | undefined;
    if (key === '') why = 'Key cannot be blank';
    else if (!META_KEY.test(key)) why = 'Key contains invalid characters';
    else if (key.length > 128) why = 'Key is too long (limit: 128 characters)';
    else if (key.startsWith('consul-')) why = "Key prefix 'consul-' is reserved for internal use";
    else if (value.length > 512) why = 'Value is too long (limit: 512 characters)';
    if (why) throw new BadRequest(`Invalid Service Meta: Couldn't load metadata pair ('${key}', '${value}'): ${why}`);
  }
}

export function parseJsonBody(text: string, goType: string): Record<string, unknown> {
  if (text.trim() === '') throw new BadRequest('Request decode failed: EOF');
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new BadRequest(`Request decode failed: ${(err as Error).message}`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new BadRequest(`Request decode failed: json: cannot unmarshal ${jsonKind(value)} into Go value of type ${goType}`);
  }
  return value as Record<string, unknown>;
}
