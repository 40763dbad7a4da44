// The data format: the version and kinds the modules read are the schema's, and data of
// another version, kind or shape is refused with a sentence for the reader.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import test from "node:test";

import { KINDS } from "../../site_assets/javascripts/explorers/kinds.js";
import { problem, requiredFields, schemaKinds, schemaVersion } from "../../site_assets/javascripts/explorers/schema.js";
import { fixture, needsFixture, schemaFile } from "./fixture.mjs";

const schema = JSON.parse(readFileSync(schemaFile, "utf8"));
const version = schemaVersion(schema);

/** data of a kind with every required field present (values are not looked at) */
function minimal(kind, extra = {}) {
  const data = { version, kind, title: "" };
  for (const key of requiredFields(schema, kind)) data[key] = null;
  return { ...data, ...extra };
}

test("explore.py writes the version and kinds the schema describes", needsFixture, () => {
  assert.equal(fixture.version, version);
  assert.deepEqual(fixture.kinds, schemaKinds(schema));
});

test("a module draws each kind of the schema, and no other", () => {
  assert.deepEqual(Object.keys(KINDS).sort(), [...schemaKinds(schema)].sort());
});

test("data of the schema's version, with its kind's fields, is accepted", () => {
  for (const kind of schemaKinds(schema)) {
    assert.ok(requiredFields(schema, kind).length > 0, kind);
    assert.equal(problem(minimal(kind), schema), null, kind);
  }
});

test("another version is refused, naming both versions", () => {
  const why = problem(minimal("gradcam", { version: version + 1 }), schema);
  assert.match(why, new RegExp(`version ${version + 1}, but this site draws version ${version}`));
  assert.match(problem(minimal("gradcam", { version: undefined }), schema), /version null/);
});

test("an unknown kind, missing fields or no object are refused", () => {
  assert.match(problem(minimal("gradcam", { kind: "bogus" }), schema), /unknown kind "bogus"/);
  const data = minimal("occlusion");
  delete data.windows;
  delete data.limit;
  assert.match(problem(data, schema), /lacks windows, limit/);
  assert.match(problem([1], schema), /not a JSON object/);
});
