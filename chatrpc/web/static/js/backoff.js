// Capped exponential backoff with jitter, for reconnecting.

export class Backoff {
  /**
   * @param {{base?: number, cap?: number, random?: () => number}} options
   *   base and cap in milliseconds; random() in [0, 1) picks the jitter.
   */
  constructor({ base = 500, cap = 30000, random = Math.random } = {}) {
    this.base = base;
    this.cap = cap;
    this.random = random;
    this.attempt = 0;
  }

  /** The wait before the next attempt: half of the capped exponential, plus up to as much again. */
  next() {
    const ceiling = Math.min(this.cap, this.base * 2 ** this.attempt);
    this.attempt += 1;
    return Math.round(ceiling / 2 + this.random() * (ceiling / 2));
  }

  reset() {
    this.attempt = 0;
  }
}
