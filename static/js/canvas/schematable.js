/* schematable.js — an output schema edited as a table of fields (name, type, description,
   enum, required) over the raw JSON textarea, which stays the form's value and its
   advanced view. The table writes the textarea and fires its input event, so the form
   checks each edit as if it were typed there; typing in the textarea redraws the table.

   What a row does not show (minimum, items, nested properties, ...) is kept as it was:
   the table edits a schema, it never rebuilds one. */

export const TYPES = ["string", "number", "integer", "boolean", "array", "object"];

/** The rows of an object schema, or null when the table cannot show it (then: raw JSON). */
export function rowsFromSchema(schema) {
  if (schema === null || schema === undefined) return [];
  if (typeof schema !== "object" || Array.isArray(schema)) return null;
  const properties = schema.properties === undefined ? {} : schema.properties;
  if (typeof properties !== "object" || properties === null || Array.isArray(properties)) return null;
  const required = Array.isArray(schema.required) ? schema.required : [];
  return Object.entries(properties).map(([name, property]) => {
    const prop = typeof property === "object" && property !== null ? property : {};
    return {
      name,
      type: typeof prop.type === "string" ? prop.type : "",
      description: typeof prop.description === "string" ? prop.description : "",
      enum: Array.isArray(prop.enum) ? prop.enum.map(String).join(", ") : "",
      required: required.includes(name),
      rest: withoutShown(prop),
    };
  });
}

/** The schema these rows make, keeping what ``base`` holds beyond them. Null for no rows. */
export function schemaFromRows(rows, base) {
  const kept = rows.filter((row) => row.name.trim() !== "");
  if (kept.length === 0 && !hasOwnKeys(base, ["properties", "required", "type"])) return null;
  const schema = { ...(base || {}), type: "object", properties: {} };
  for (const row of kept) {
    const property = { ...(row.rest || {}) };
    if (row.type) property.type = row.type;
    if (row.description.trim()) property.description = row.description.trim();
    const options = enumOptions(row.enum, row.type);
    if (options.length) property.enum = options;
    schema.properties[row.name.trim()] = property;
  }
  const required = kept.filter((row) => row.required).map((row) => row.name.trim());
  if (required.length) schema.required = required;
  else delete schema.required;
  return schema;
}

/** "a, b" -> ["a", "b"]; numbers for number and integer fields. */
export function enumOptions(text, type) {
  const parts = String(text || "")
    .split(",")
    .map((part) => part.trim())
    .filter((part) => part !== "");
  if (type === "number" || type === "integer") {
    return parts.map((part) => (Number.isFinite(Number(part)) ? Number(part) : part));
  }
  return parts;
}

function withoutShown(property) {
  const rest = { ...property };
  for (const key of ["type", "description", "enum"]) delete rest[key];
  if (typeof property.type !== "string" && property.type !== undefined) rest.type = property.type;
  return rest;
}

function hasOwnKeys(value, skip) {
  return !!value && Object.keys(value).some((key) => !skip.includes(key));
}

/* ---- The DOM ------------------------------------------------------------------------- */

/** Puts a table over every schema field under ``root`` that has none yet. */
export function mountSchemaTables(root) {
  for (const holder of root.querySelectorAll("[data-schema-table]")) {
    if (holder.dataset.mounted) continue;
    const field = holder.closest(".nf-field");
    const textarea = field && field.querySelector("textarea");
    if (!textarea) continue;
    holder.dataset.mounted = "true";
    new SchemaTable(holder, textarea).draw();
  }
}

class SchemaTable {
  constructor(holder, textarea) {
    this.holder = holder;
    this.textarea = textarea;
    this.writing = false;
    textarea.addEventListener("input", () => {
      if (!this.writing) this.draw();
    });
  }

  parsed() {
    const text = this.textarea.value.trim();
    if (!text) return { schema: null, ok: true };
    try {
      return { schema: JSON.parse(text), ok: true };
    } catch {
      return { schema: null, ok: false };
    }
  }

  draw() {
    const { schema, ok } = this.parsed();
    const rows = ok ? rowsFromSchema(schema) : null;
    this.holder.replaceChildren();
    if (rows === null) {
      const note = document.createElement("p");
      note.className = "help";
      note.textContent = "The table cannot show this schema; edit it as raw JSON below.";
      this.holder.append(note);
      return;
    }
    this.base = schema;
    this.rows = rows;
    const table = document.createElement("table");
    table.className = "nf-schema-table";
    table.dataset.testid = "schema-table";
    const head = table.createTHead().insertRow();
    for (const title of ["Field", "Type", "Description", "Enum (a, b, ...)", "Required", ""]) {
      const th = document.createElement("th");
      th.textContent = title;
      head.append(th);
    }
    const body = table.createTBody();
    rows.forEach((row, index) => body.append(this.rowElement(row, index)));
    const add = document.createElement("button");
    add.type = "button";
    add.className = "button secondary small";
    add.textContent = "Add field";
    add.dataset.testid = "schema-add";
    add.addEventListener("click", () => {
      this.rows.push({ name: `field_${this.rows.length + 1}`, type: "string", description: "", enum: "", required: true, rest: {} });
      this.write();
      this.draw();
      const inputs = this.holder.querySelectorAll("input[data-key='name']");
      if (inputs.length) inputs[inputs.length - 1].focus();
    });
    this.holder.append(table, add);
  }

  rowElement(row, index) {
    const tr = document.createElement("tr");
    const cell = (element) => {
      const td = document.createElement("td");
      td.append(element);
      tr.append(td);
      return element;
    };
    const text = (key, label) => {
      const input = document.createElement("input");
      input.type = "text";
      input.value = row[key];
      input.dataset.key = key;
      input.setAttribute("aria-label", `${label} of field ${index + 1}`);
      input.spellcheck = key === "description";
      input.addEventListener("input", () => {
        row[key] = input.value;
        this.write();
      });
      return cell(input);
    };
    text("name", "Name").classList.add("mono");
    const type = document.createElement("select");
    type.dataset.key = "type";
    type.setAttribute("aria-label", `Type of field ${index + 1}`);
    for (const option of ["", ...TYPES]) {
      const element = document.createElement("option");
      element.value = option;
      element.textContent = option || "(any)";
      element.selected = option === row.type;
      type.append(element);
    }
    type.addEventListener("change", () => {
      row.type = type.value;
      this.write();
    });
    cell(type);
    text("description", "Description");
    text("enum", "Enum");
    const required = document.createElement("input");
    required.type = "checkbox";
    required.checked = row.required;
    required.dataset.key = "required";
    required.setAttribute("aria-label", `Field ${index + 1} is required`);
    required.addEventListener("change", () => {
      row.required = required.checked;
      this.write();
    });
    cell(required);
    const remove = document.createElement("button");
    remove.type = "button";
    remove.className = "button link small";
    remove.textContent = "Remove";
    remove.setAttribute("aria-label", `Remove field ${index + 1}`);
    remove.addEventListener("click", () => {
      this.rows.splice(index, 1);
      this.write();
      this.draw();
    });
    cell(remove);
    return tr;
  }

  write() {
    const schema = schemaFromRows(this.rows, this.base);
    this.textarea.value = schema === null ? "" : JSON.stringify(schema, null, 2);
    this.writing = true;
    try {
      this.textarea.dispatchEvent(new Event("input", { bubbles: true }));
    } finally {
      this.writing = false;
    }
  }
}
