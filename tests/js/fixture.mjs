// Reference values written by tests/test_explorers_js.py (numpy, matplotlib, torch), and the
// path to the explorers' modules. Tests that need the fixture are skipped without it (run
// them through pytest); the others run with a plain `node --test tests/js/`.
import { readFileSync } from "node:fs";

const path = process.env.CONVLENS_JS_FIXTURE;

export const fixture = path ? JSON.parse(readFileSync(path, "utf8")) : null;

/** test options: skipped, with the reason, when there is no fixture */
export const needsFixture = { skip: fixture ? false : "no CONVLENS_JS_FIXTURE: run pytest tests/test_explorers_js.py" };

export const modules = new URL("../../site_assets/javascripts/explorers/", import.meta.url);

export const schemaFile = new URL("../../lib/convlens_course/explorer_schema.json", import.meta.url);

/** the largest absolute difference between two sequences of numbers of the same length */
export function maxDiff(a, b) {
  if (a.length !== b.length) throw new Error(`lengths differ: ${a.length} and ${b.length}`);
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i] - b[i]));
  return d;
}
