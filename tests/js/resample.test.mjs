// Resampling: torch's bilinear interpolation, average pooling, and occlusion's cell grid.
import assert from "node:assert/strict";
import test from "node:test";

import { blockMeans, cells, nearest, upsample } from "../../site_assets/javascripts/explorers/resample.js";
import { fixture, maxDiff, needsFixture } from "./fixture.mjs";

test("bilinear resizing is F.interpolate(mode='bilinear', align_corners=False)", needsFixture, () => {
  for (const { h, w, H, W, src, expected } of fixture.upsample) {
    const d = maxDiff(upsample(Float64Array.from(src), h, w, H, W), expected);
    assert.ok(d < 1e-12, `${h}x${w} -> ${H}x${W}: off by ${d}`);
  }
});

test("resizing to the same size changes nothing", () => {
  const src = Float64Array.from([1, 2, 3, 4, 5, 6]);
  assert.deepEqual(Array.from(upsample(src, 2, 3, 2, 3)), Array.from(src));
});

test("block means are F.avg_pool2d's, the remainder cut off", needsFixture, () => {
  for (const { H, W, size, src, height, width, expected } of fixture.blocks) {
    const b = blockMeans(Float64Array.from(src), H, W, size);
    assert.equal(b.height, height);
    assert.equal(b.width, width);
    assert.ok(maxDiff(b.means, expected) < 1e-12);
  }
});

test("nearest blocks cover the picture, the last ones stretched over the remainder", () => {
  const out = nearest(Float64Array.from([1, 2, 3, 4]), 2, 2, 2, 5, 5);
  assert.deepEqual(Array.from(out), [1, 1, 2, 2, 2, 1, 1, 2, 2, 2, 3, 3, 4, 4, 4, 3, 3, 4, 4, 4, 3, 3, 4, 4, 4]);
});

test("an occlusion cell covers the stride x stride square centred on its window", () => {
  // window 4, stride 2: cell (r, q) covers pixels 2r + 1 .. 2r + 2; pixel 0 and pixel 5 of a
  // 6-pixel side have no cell (no window is centred there)
  const src = Float64Array.from([1, 2, 3, 4, 5, 6]);  // 2 rows x 3 columns
  const out = Array.from(cells(src, 2, 3, 4, 2, 6, 8));
  const row = (r) => out.slice(8 * r, 8 * r + 8);
  const bare = Array(8).fill(NaN);
  assert.deepEqual(row(0), bare);
  assert.deepEqual(row(1), [NaN, 1, 1, 2, 2, 3, 3, NaN]);
  assert.deepEqual(row(2), row(1));
  assert.deepEqual(row(3), [NaN, 4, 4, 5, 5, 6, 6, NaN]);
  assert.deepEqual(row(4), row(3));
  assert.deepEqual(row(5), bare);
});
