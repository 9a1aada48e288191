/* wiring.js — a wire dropped on a node's body rather than on a port. A node whose inputs
   are its template's variables (a new llm, whose prompt is not written yet, has no port)
   takes it as a new variable: `{{ text }}` is added to that field (the server names it,
   canvas_payload's palette `variableField`) and the wire goes to the port it makes. Pure
   (wiring.test.js). */

/** A variable name for a wire from output port `port`: that name, made an identifier and
    free among `taken` (the node's input ports). */
export function variableName(port, taken) {
  let stem = String(port || "").replace(/[^A-Za-z0-9_]/g, "_").replace(/^(?=\d)/, "_") || "value";
  if (stem === "_") stem = "value";
  let name = stem;
  for (let i = 2; taken.has(name); i++) name = `${stem}_${i}`;
  return name;
}

/** The template with `{{ name }}` added: on its own when empty, else after a space or on a
    new line after a line's end. */
export function withVariable(text, name) {
  const source = typeof text === "string" ? text : "";
  const tag = `{{ ${name} }}`;
  if (!source.trim()) return tag;
  return source.endsWith("\n") || source.endsWith(" ") ? source + tag : `${source}\n${tag}`;
}
