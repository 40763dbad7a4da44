/* Which module draws which kind of explorer (the kinds of explorer_schema.json). Each
 * builder takes (root, data, ui) and resolves to {draw, ...} once its figure is drawn. */

import { channels } from "./channels.js";
import { gradcam } from "./gradcam.js";
import { occlusion } from "./occlusion.js";
import { receptiveField } from "./receptive-field.js";
import { smoothgrad } from "./smoothgrad.js";

export const KINDS = {
  "receptive-field": receptiveField,
  gradcam,
  occlusion,
  smoothgrad,
  channels,
};
