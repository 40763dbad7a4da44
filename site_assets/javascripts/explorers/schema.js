/* The data's format: explorer_schema.json (lib/convlens_course/), which the build copies next
 * to these modules as schema.json. It is the one place the format version is written:
 * convlens_course.explore stamps it on the data, and a figure whose data carries another
 * version says so instead of drawing. */

/** the schema, fetched once from beside this module */
let pending = null;
export function loadSchema(url = new URL("schema.json", import.meta.url)) {
  pending = pending || fetch(url).then((response) => {
    if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
    return response.json();
  });
  return pending;
}

/** the format version the schema describes */
export function schemaVersion(schema) {
  return schema.properties.version.const;
}

/** the kinds of explorer the schema knows */
export function schemaKinds(schema) {
  return schema.properties.kind.enum;
}

/** the fields the schema requires of a kind's data (top level, besides version, kind, title) */
export function requiredFields(schema, kind) {
  for (const rule of schema.allOf || []) {
    if (rule.if?.properties?.kind?.const === kind) {
      const name = rule.then.$ref.replace("#/$defs/", "");
      return schema.$defs[name].required || [];
    }
  }
  return [];
}

/**
 * Why this data cannot be drawn by these modules, as a sentence for the reader; null when it
 * can. Checks the version, the kind and the top-level fields the kind requires (the Python
 * tests validate the whole data against the schema).
 */
export function problem(data, schema) {
  const version = schemaVersion(schema);
  if (data === null || typeof data !== "object" || Array.isArray(data)) {
    return "Its data is not a JSON object.";
  }
  if (data.version !== version) {
    return `Its data is in format version ${JSON.stringify(data.version ?? null)}, but this site ` +
      `draws version ${version}: rebuild the lessons and the site from the same convlens ` +
      "(python -m coursebuild, then mkdocs build).";
  }
  if (!schemaKinds(schema).includes(data.kind)) {
    return `Its data is of an unknown kind ${JSON.stringify(data.kind ?? null)}.`;
  }
  const missing = requiredFields(schema, data.kind).filter((key) => !(key in data));
  return missing.length ? `Its data lacks ${missing.join(", ")}.` : null;
}
