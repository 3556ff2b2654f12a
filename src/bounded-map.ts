/**
 * A Map that holds at most `max` entries; adding one more drops the oldest (a Map iterates in
 * insertion order). For memos and caches whose keys come from outside (token values, addresses,
 * requested scopes), so that no caller can grow memory without limit.
 */
export class BoundedMap<K, V> extends Map<K, V> {
  readonly #max: number;

  constructor(max: number) {
    super();
    this.#max = Math.max(1, Math.floor(max));
  }

  override set(key: K, value: V): this {
    if (this.size >= this.#max && !this.has(key)) this.delete(this.keys().next().value as K);
    return super.set(key, value);
  }
}
