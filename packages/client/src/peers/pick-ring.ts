/**
 * The last picks of a service (peer, attempt number, time), for `client.explain()`: a fixed ring
 * written once per attempt, read only when someone asks. Three array writes per attempt; nothing
 * allocated after the first lap.
 */
export class PickRing {
  readonly #peers: string[];
  readonly #attempts: Uint8Array;
  readonly #at: Float64Array;
  #next = 0;
  #count = 0;

  constructor(readonly size = 32) {
    this.#peers = new Array<string>(size).fill('');
    this.#attempts = new Uint8Array(size);
    this.#at = new Float64Array(size);
  }

  add(peerId: string, attempt: number, now: number): void {
    const i = this.#next;
    this.#peers[i] = peerId;
    this.#attempts[i] = attempt;
    this.#at[i] = now;
    this.#next = i + 1 === this.size ? 0 : i + 1;
    if (this.#count < this.size) this.#count++;
  }

  /** Newest first. */
  list(now: number): { peer: string; attempt: number; agoMs: number }[] {
    const out: { peer: string; attempt: number; agoMs: number }[] = [];
    for (let k = 1; k <= this.#count; k++) {
      const i = (this.#next - k + this.size) % this.size;
      out.push({ peer: this.#peers[i]!, attempt: this.#attempts[i]!, agoMs: Math.max(0, now - this.#at[i]!) });
    }
    return out;
  }
}
