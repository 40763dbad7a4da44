// Decoding: base64 + inflate + dequantise give explore.decode's numbers exactly.
import assert from "node:assert/strict";
import test from "node:test";

import { bit, bytes, inflate, slice, unit, unpack, values } from "../../site_assets/javascripts/explorers/decode.js";
import { fixture, needsFixture } from "./fixture.mjs";

test("base64 decodes to bytes", () => {
  assert.deepEqual(Array.from(bytes("AAH/gA==")), [0, 1, 255, 128]);
  assert.deepEqual(Array.from(bytes("")), []);
});

test("an empty string inflates to no bytes", async () => {
  assert.equal((await inflate("")).length, 0);
});

test("a map decodes to explore.decode's codes and values", needsFixture, async () => {
  for (const { entry, codes, values: expected } of fixture.maps) {
    const map = await unpack(entry);
    assert.deepEqual(Array.from(map.q), codes);
    assert.deepEqual(Array.from(values(map)), expected);  // the same operations, in the same order
    const span = map.hi - map.lo;
    assert.ok(Array.from(unit(map)).every((u, i) => span === 0 || Math.abs(map.lo + u * span - expected[i]) < 1e-9 * Math.max(1, Math.abs(span))));
  }
});

test("each map of a stack decodes over its own range", needsFixture, async () => {
  for (const { entry, values: expected } of fixture.stacks) {
    const stack = await unpack(entry), per = expected.length / entry.shape[0];
    for (let k = 0; k < entry.shape[0]; k++) {
      const map = slice(stack, k);
      assert.deepEqual(map.shape, entry.shape.slice(1));
      assert.equal(map.lo, entry.lo[k]);
      assert.deepEqual(Array.from(values(map)), expected.slice(k * per, (k + 1) * per));
    }
  }
});

test("a packed map of the wrong size is refused", needsFixture, async () => {
  const { entry } = fixture.maps[0];
  await assert.rejects(unpack({ ...entry, shape: [5, 8] }), /holds 35 codes, not 40/);
});

test("a footprint's bits are numpy's packbits, most significant first", needsFixture, async () => {
  const packed = await inflate(fixture.bits.z);
  assert.deepEqual(fixture.bits.mask.map((_, n) => (bit(packed, n) ? 1 : 0)), fixture.bits.mask);
});
