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

/** {input name: File} from a run form's file fields with a file chosen: sent as parts of a
    multipart body, each named by its input (webapp/runs/uploads.py). */
export function collectFiles(form) {
  const files = {};
  for (const field of form.querySelectorAll("[data-file-input]")) {
    const file = field.files && field.files[0];
    if (file) files[field.dataset.fileInput] = file;
  }
  return files;
}

/** The multipart body of a run with files: the JSON as the field "body", then each file as
    a part named by its input. */
export function uploadBody(body, files) {
  const form = new FormData();
  form.append("body", JSON.stringify(body));
  for (const [name, file] of Object.entries(files)) form.append(name, file, file.name);
  return form;
}
