/* inputs.js — the run form's values, read the way the CLI reads `--input name=value`. */

/** JSON when it parses, else the text itself; an empty field is left out (undefined: the
    input's default applies). */
export function parseValue(text) {
  if (text.trim() === "") return undefined;
  try {
    return JSON.parse(text);
  } catch (_) {
    return text;
  }
}

/** {name: value} from a run form's [data-input-name] fields. */
export function collectInputs(form) {
  const inputs = {};
  for (const field of form.querySelectorAll("[data-input-name]")) {
    const value = parseValue(field.value);
    if (value !== undefined) inputs[field.dataset.inputName] = value;
  }
  return inputs;
}
