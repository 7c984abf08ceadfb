/**
 * The `rotateBucketController` of ONE breaker: opossum asks it `listenerCount`, `on` and
 * `removeListener`, which on a shared EventEmitter are linear scans over every breaker's listener
 * (O(n^2) to add or remove n peers). A slot holds its one listener; the factory's single interval
 * calls every slot it holds.
 */
export class RotationSlot {
  #rotate: (() => void) | undefined;

  constructor(private readonly slots: Set<RotationSlot>) {}

  listenerCount(_event: string, listener?: () => void): number {
    return this.#rotate !== undefined && (listener === undefined || listener === this.#rotate) ? 1 : 0;
  }

  on(_event: string, listener: () => void): this {
    this.#rotate = listener;
    this.slots.add(this);
    return this;
  }

  removeListener(_event: string, listener: () => void): this {
    if (listener === this.#rotate) {
      this.#rotate = undefined;
      this.slots.delete(this);
    }
    return this;
  }

  rotate(): void {
    this.#rotate?.();
  }
}
