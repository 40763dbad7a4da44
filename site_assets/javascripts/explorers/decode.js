/* Decoding the explorers' data (see convlens_course/explore.py and explorer_schema.json).
 *
 * A map is {shape, lo, hi, z}: uint8 codes q in C order, zlib-compressed, base64; its values
 * are lo + q * (hi - lo) / 255. A stack [K, ...] has K ranges (lo and hi are lists). No DOM
 * here: these run in Node's test runner too.
 */

/** base64 -> bytes */
export function bytes(b64) {
  const bin = atob(b64), out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

/** base64 of zlib data -> the inflated bytes (an empty string is no bytes) */
export async function inflate(b64) {
  if (!b64) return new Uint8Array(0);
  const stream = new Blob([bytes(b64)]).stream().pipeThrough(new DecompressionStream("deflate"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

/** a packed map or stack -> {shape, q (uint8 codes), lo, hi} */
export async function unpack(entry) {
  const q = await inflate(entry.z), count = product(entry.shape);
  if (q.length !== count) {
    throw new Error(`a packed map of shape [${entry.shape}] holds ${q.length} codes, not ${count}`);
  }
  return { shape: entry.shape, q, lo: entry.lo, hi: entry.hi };
}

export function product(list) {
  return list.reduce((a, b) => a * b, 1);
}

/** entry k of an unpacked stack, as a map {shape, q, lo, hi} (no copy) */
export function slice(stack, k) {
  const shape = stack.shape.slice(1), n = product(shape);
  return { shape, q: stack.q.subarray(k * n, (k + 1) * n), lo: stack.lo[k], hi: stack.hi[k] };
}

/** an unpacked map's values, computed in the order explore.decode computes them */
export function values(map) {
  const out = new Float64Array(map.q.length), lo = map.lo, span = map.hi - map.lo;
  for (let i = 0; i < out.length; i++) out[i] = lo + map.q[i] * span / 255;
  return out;
}

/** the codes of an unpacked map scaled to [0, 1] (q / 255): a map drawn on its own range */
export function unit(map) {
  return Float64Array.from(map.q, (q) => q / 255);
}

/** bit n of bytes packed as numpy's packbits does (most significant bit first) */
export function bit(packed, n) {
  return (packed[n >> 3] & (128 >> (n & 7))) !== 0;
}
