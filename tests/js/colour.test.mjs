// Colour: matplotlib's lookup (index floor(256 v), clipped) and the one blend of a heat map
// over a photo.
import assert from "node:assert/strict";
import test from "node:test";

import { blend, byMaximum, grey, lookup, lutIndex } from "../../site_assets/javascripts/explorers/colour.js";
import { bytes } from "../../site_assets/javascripts/explorers/decode.js";
import { fixture, needsFixture } from "./fixture.mjs";

test("the table index is floor(256 v), clipped to 0..255", () => {
  assert.deepEqual([0, 0.00390625, 0.0039, 0.5, 0.999, 1, -3, 7].map(lutIndex), [0, 1, 0, 128, 255, 255, 0, 255]);
});

test("every colour map paints what matplotlib paints", needsFixture, () => {
  for (const [name, { table, rgb }] of Object.entries(fixture.luts)) {
    const lut = bytes(table);
    assert.equal(lut.length, 768, name);
    const painted = fixture.values.flatMap((v) => lookup(lut, v));
    assert.deepEqual(painted, rgb, name);
  }
});

test("a heat map over a photo is (1 - alpha) photo + alpha colour; NaN leaves the photo", needsFixture, () => {
  const table = bytes(fixture.luts.jet.table), { norm, base, cases, plain } = fixture.blend;
  const values = norm.map((v) => (v === null ? NaN : v));
  for (const { alpha, rgba } of cases) {
    assert.deepEqual(Array.from(blend(values, table, Uint8ClampedArray.from(base), alpha)), rgba, `alpha ${alpha}`);
  }
  // without a photo, the colour itself (opaque), and nothing where there is no value
  const alone = Array.from(blend(values, table));
  const expected = plain.map((c, i) => (norm[i >> 2] === null ? 0 : c));
  assert.deepEqual(alone, expected);
});

test("grey is the mean of red, green and blue", () => {
  assert.deepEqual(Array.from(grey(Uint8ClampedArray.from([30, 60, 90, 7, 255, 0, 0, 255]))), [60, 60, 60, 255, 85, 85, 85, 255]);
});

test("byMaximum divides by the largest value, or gives zeros", () => {
  assert.deepEqual(Array.from(byMaximum(Float64Array.from([1, 4, 2]))), [0.25, 1, 0.5]);
  assert.deepEqual(Array.from(byMaximum(Float64Array.from([-1, 0]))), [0, 0]);
});
