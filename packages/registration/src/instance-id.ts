import { nanoid } from 'nanoid';

/**
 * `<service>-<10 random chars>`. nanoid's alphabet (A-Z a-z 0-9 _ -) fits the registry's id rule,
 * and the service name (which starts with a letter or digit) keeps the id from starting with `-`.
 * 10 chars give ~60 bits: no collision among the instances one registry will ever see.
 */
export function createInstanceId(service: string): string {
  return `${service}-${nanoid(10)}`;
}
