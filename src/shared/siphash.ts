/**
 * SipHash (Aumasson and Bernstein), the keyed hash that hash tables use
 * against flooding: without the key, nobody can build inputs that collide.
 *
 * Written here rather than taken from npm: the packages there build an object
 * per 64-bit word on every round (tens of allocations per id) and ship
 * CommonJS only; this one keeps its state in one typed array. Checked against
 * the reference vectors of the paper (SipHash-2-4) in `tests/unit/siphash.test.ts`.
 *
 * @module
 */

/** v0..v3 as (high, low) 32-bit halves: [v0h, v0l, v1h, v1l, v2h, v2l, v3h, v3l]. */
const v = new Int32Array(8);

/** A 128-bit key from 16 random bytes (a fresh one per process unless given). */
export function sipHashKey(bytes: Uint8Array = crypto.getRandomValues(new Uint8Array(16))): Int32Array {
  if (bytes.length !== 16) throw new RangeError("a SipHash key has 16 bytes");
  const word = (at: number) => bytes[at] | bytes[at + 1] << 8 | bytes[at + 2] << 16 | bytes[at + 3] << 24;
  // [k0 high, k0 low, k1 high, k1 low], each 64-bit half read little-endian.
  return Int32Array.of(word(4), word(0), word(12), word(8));
}

function add(a: number, b: number) {
  const low = (v[a + 1] + v[b + 1]) | 0;
  const carry = (low >>> 0) < (v[a + 1] >>> 0) ? 1 : 0;
  v[a] = (v[a] + v[b] + carry) | 0;
  v[a + 1] = low;
}

function rotate(a: number, n: number) {
  const high = v[a], low = v[a + 1];
  v[a] = (high << n) | (low >>> (32 - n));
  v[a + 1] = (low << n) | (high >>> (32 - n));
}

function swapHalves(a: number) {
  const high = v[a];
  v[a] = v[a + 1];
  v[a + 1] = high;
}

function xor(a: number, b: number) {
  v[a] ^= v[b];
  v[a + 1] ^= v[b + 1];
}

function sipRound() {
  add(0, 2), rotate(2, 13), xor(2, 0), swapHalves(0);
  add(4, 6), rotate(6, 16), xor(6, 4);
  add(0, 6), rotate(6, 21), xor(6, 0);
  add(4, 2), rotate(2, 17), xor(2, 4), swapHalves(4);
}

function absorb(high: number, low: number, rounds: number) {
  v[6] ^= high, v[7] ^= low;
  for (let r = 0; r < rounds; r++) sipRound();
  v[0] ^= high, v[1] ^= low;
}

/**
 * SipHash-c-d of `bytes` under `key`, left in `v`; the 64-bit result is
 * v0 ^ v1 ^ v2 ^ v3 (see {@link sipHash32} and {@link sipHash64}).
 */
function run(key: Int32Array, bytes: Uint8Array, compression: number, finalization: number) {
  v[0] = key[0] ^ 0x736f6d65, v[1] = key[1] ^ 0x70736575;
  v[2] = key[2] ^ 0x646f7261, v[3] = key[3] ^ 0x6e646f6d;
  v[4] = key[0] ^ 0x6c796765, v[5] = key[1] ^ 0x6e657261;
  v[6] = key[2] ^ 0x74656462, v[7] = key[3] ^ 0x79746573;
  const whole = bytes.length & ~7;
  for (let i = 0; i < whole; i += 8) {
    const low = bytes[i] | bytes[i + 1] << 8 | bytes[i + 2] << 16 | bytes[i + 3] << 24;
    const high = bytes[i + 4] | bytes[i + 5] << 8 | bytes[i + 6] << 16 | bytes[i + 7] << 24;
    absorb(high, low, compression);
  }
  // The last word: the bytes left, and the length's low byte in its top byte.
  let low = 0, high = (bytes.length & 0xff) << 24;
  for (let i = whole; i < bytes.length; i++) {
    const shift = ((i - whole) & 3) * 8;
    if (i - whole < 4) low |= bytes[i] << shift;
    else high |= bytes[i] << shift;
  }
  absorb(high, low, compression);
  v[5] ^= 0xff;
  for (let r = 0; r < finalization; r++) sipRound();
}

/** SipHash-1-3 (as Rust's hash maps use it) folded to a non-negative 31-bit integer, for hash tables. */
export function sipHash32(key: Int32Array, bytes: Uint8Array): number {
  run(key, bytes, 1, 3);
  return ((v[0] ^ v[2] ^ v[4] ^ v[6]) ^ (v[1] ^ v[3] ^ v[5] ^ v[7])) >>> 1;
}

/** SipHash-c-d's full 64-bit result (SipHash-2-4 unless told), for tests against the reference vectors. */
export function sipHash64(key: Int32Array, bytes: Uint8Array, compression = 2, finalization = 4): bigint {
  run(key, bytes, compression, finalization);
  const high = (v[0] ^ v[2] ^ v[4] ^ v[6]) >>> 0;
  const low = (v[1] ^ v[3] ^ v[5] ^ v[7]) >>> 0;
  return (BigInt(high) << 32n) | BigInt(low);
}
