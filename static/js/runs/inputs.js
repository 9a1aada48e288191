/* inputs.js — the run form's values, read the way the CLI reads `--input name=value`. */

/** JSON when it parses, else the text itself; an empty field is left out (undefined: the
    input's default applies). */
export function parseValue(text) {
  const trimmed = text.trim();
  if (trimmed === "") return undefined;
  try {
    return JSON.parse(text);
  } catch (error) {
    // Meant as a JSON object or list but broken: refused, not sent as text by surprise.
    if (trimmed.startsWith("{") || trimmed.startsWith("[")) throw new BadValue(error.message);
    return text;
  }
}

/** A field whose value starts like JSON ({ or [) but is not valid JSON. */
export class BadValue extends Error {
  constructor(reason, name) {
    super(`${name ? `“${name}” ` : ""}looks like JSON but is not valid JSON (${reason}). Fix it, or put it in quotes to send it as text.`);
    this.reason = reason;
    this.inputName = name || "";
  }
}

/** {name: value} from a run form's [data-input-name] fields; BadValue (its `field` the
    one at fault) when a value starts like JSON but does not parse. */
export function collectInputs(form) {
  const inputs = {};
  for (const field of form.querySelectorAll("[data-input-name]")) {
    let value;
    try {
      value = parseValue(field.value);
    } catch (error) {
      if (error instanceof BadValue) throw Object.assign(new BadValue(error.reason, field.dataset.inputName), { field });
      throw error;
    }
    if (value !== undefined) inputs[field.dataset.inputName] = value;
  }
  return inputs;
}

/** {name: {name, data (base64)}} from a run form's file fields with a file chosen. */
export async function collectFiles(form) {
  const files = {};
  for (const field of form.querySelectorAll("[data-file-input]")) {
    const file = field.files && field.files[0];
    if (!file) continue;
    const bytes = new Uint8Array(await file.arrayBuffer());
    let binary = "";
    for (let i = 0; i < bytes.length; i += 0x8000) binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
    files[field.dataset.fileInput] = { name: file.name, data: btoa(binary) };
  }
  return files;
}
