/* The one fold of a run's event log, in the browser: graphs/log.py, line for line.

   A pure ES module (no DOM, no globals). The golden logs in tests/fixtures/logs hold it
   and the Python fold to the same answers (static/js/runs/log.test.js), so a change to
   one without the other fails the tests. The state's shape is documented in graphs/log.py.

   API:
     const log = new RunLog();
     log.apply(event)      -> false when event.seq is not past the last one applied
                              (nothing changes), else true
     log.toJSON()          -> the whole state: exactly graphs.log.RunLog.to_json()
     log.status, log.usage, log.costUsd, ... the run's fields (camelCase of toJSON's)
     log.nodes()           -> node ids, in the order the log first named them
     log.visits(node?)     -> a node's visits by iteration (all visits, in the order
                              first seen, without node); each visit's fields are
                              toJSON's (snake_case), with `text` and `thinking`
                              getters
     log.lastVisit(node)   -> the visit of node its latest event was about, or null
     log.openVisits()      -> [[node, iteration], ...] begun and not ended
     log.finalStates()     -> {node: done|failed|cancelled|skipped|waiting|running}
     log.copy()            -> a RunLog in the same state, cheaply (a replay's seek
                              points): neither's later events change the other
                              (the browser's own; Python has no need of it)
     fold(events)          -> a RunLog with every event applied
     origin(value)         -> a cached/reused field as the fold keeps it ({source, run})
*/

const DEFAULT_SCHEMA = 1;
const SOURCE_RUN = /^run (\d+)$/;
const SETTLED = new Set(["done", "failed", "cancelled", "skipped"]);
// Events that show a visit has begun even when its node_started is not in the log.
const RUNNING = new Set(["node_delta", "node_thinking", "node_progress", "node_item", "node_retrying"]);
// An item's run_finished status as the item's status (a visit's words).
const ITEM_ENDED = { succeeded: "done", failed: "failed", cancelled: "cancelled" };

// What a run_paused says (graphs.budget): the call's node and the run's figures.
const PAUSED = ["node", "iteration", "spent_usd", "remaining_usd", "needed_usd", "budget_usd"];

const isObject = (value) => value !== null && typeof value === "object" && !Array.isArray(value);
const isInt = (value) => Number.isInteger(value);
const zero = () => ({ input_tokens: 0, output_tokens: 0 });
// Usage figures that join a total with the first record that has some (graphs/log.py).
const OPTIONAL_USAGE = [
  "thinking_tokens", "cache_creation_input_tokens", "cache_read_input_tokens",
  "cache_creation_1h_input_tokens",
];

/** thinking_tokens and the cache figures join the totals with the first usage that has
    some (graphs/log.py). */
function addUsage(total, usage) {
  if (!isObject(usage)) return;
  for (const key of Object.keys(total)) total[key] += Math.trunc(Number(usage[key]) || 0);
  for (const key of OPTIONAL_USAGE) {
    const figure = Math.trunc(Number(usage[key]) || 0);
    if (figure && !(key in total)) total[key] = figure;
  }
}

/** A recorded figure, or null when the event has none (or not a number). */
function number(value) {
  return typeof value === "number" ? value : null;
}

/** A copy of a JSON object field; anything else reads as {}. */
function object(value) {
  return isObject(value) ? { ...value } : {};
}

function plus(total, value) {
  const figure = number(value);
  if (figure === null) return total;
  return total === null ? figure : total + figure;
}

const field = (event, key) => (event[key] === undefined ? null : event[key]);

/** A `child_runs` field: its ids (integers or text), anything else left out. */
function runIds(value) {
  if (!Array.isArray(value)) return [];
  return value.filter((v) => typeof v === "string" || Number.isInteger(v));
}

/** A `cached` or `reused` field as the fold keeps it, whichever form the log used. */
export function origin(value) {
  if (!isObject(value)) {
    if (!value) return null;
    return { source: typeof value === "string" ? value : "", run: null };
  }
  let source = value.source ? String(value.source) : "";
  let run = isInt(value.run) ? value.run : null;
  if (run === null) {
    const match = SOURCE_RUN.exec(source);
    run = match ? parseInt(match[1], 10) : null;
  } else if (!source) {
    source = "run " + run;
  }
  const kept = { source: source, run: run };
  if ("usage" in value) kept.usage = value.usage;
  return kept;
}

function copyItem(item) {
  const copied = { ...item, usage: { ...item.usage } };
  if (Object.hasOwn(item, "maps")) {
    copied.maps = {};
    for (const [node, items] of Object.entries(item.maps)) copied.maps[node] = copyItems(items);
  }
  return copied;
}

function copyItems(items) {
  if (items === null) return null;
  const copied = {};
  for (const [index, item] of Object.entries(items)) copied[index] = copyItem(item);
  return copied;
}

/** Fold a map's node_item event into its item's state (graphs/log.py _item_event). */
function itemEvent(visit, event) {
  if (visit.items === null) visit.items = {};
  foldItem(visit.items, event);
}

/** A node_item event, or one nested in another, into `items` (graphs/log.py _fold_item):
    an inner map's items fold into `maps` of the item they ran in. */
function foldItem(items, event) {
  const index = event.item;
  if (!isInt(index)) return;
  const key = String(index);
  let item = items[key];
  if (item === undefined) {
    item = items[key] = { status: "running", node: null, text: "", error: "", usage: zero() };
  }
  const kind = event.event;
  const inner = event.inner;
  if (typeof inner === "string") item.node = inner;
  if (kind === "node_started") {
    item.text = "";
    if (typeof inner === "string" && Object.hasOwn(item, "maps")) delete item.maps[inner];
  }
  if (kind === "node_item") {
    const nested = event.nested;
    if (typeof inner === "string" && nested !== null && typeof nested === "object" && !Array.isArray(nested)) {
      if (!Object.hasOwn(item, "maps")) item.maps = {};
      if (!Object.hasOwn(item.maps, inner)) item.maps[inner] = {};
      foldItem(item.maps[inner], nested);
    }
  } else if (kind === "node_delta") {
    item.text += String(event.text || "");
  } else if (kind === "node_finished") {
    addUsage(item.usage, event.usage);
  } else if (kind === "node_failed") {
    item.error = String(event.error || "");
  } else if (kind === "run_finished") {
    const status = String(event.status);
    item.status = Object.hasOwn(ITEM_ENDED, status) ? ITEM_ENDED[status] : "failed";
    if (event.error) item.error = String(event.error);
  }
}

/** A recorded text, or null (graphs/log.py _text_or_none). */
function textOrNull(value) {
  return typeof value === "string" && value ? value : null;
}

/** An agent's turn of this number, added empty when it is new (graphs/log.py _turn_of). */
function turnOf(visit, number) {
  let turn = visit.turns.find((known) => known.turn === number);
  if (turn === undefined) {
    turn = { turn: number, content: [], stop_reason: null, model: null, usage: null, source: null, tools: [] };
    visit.turns.push(turn);
  }
  return turn;
}

/** An agent's reply, by its turn (graphs/log.py _agent_turn). */
function agentTurn(visit, event) {
  if (!isInt(event.turn)) return;
  const turn = turnOf(visit, event.turn);
  turn.content = Array.isArray(event.content) ? [...event.content] : [];
  turn.stop_reason = textOrNull(event.stop_reason);
  turn.model = textOrNull(event.model);
  turn.usage = isObject(event.usage) ? { ...event.usage } : null;
  turn.source = textOrNull(event.source);
}

/** An agent's answered tool call, in its turn, by its tool_use_id (graphs/log.py _agent_tool). */
function agentTool(visit, event) {
  const useId = event.tool_use_id;
  if (!isInt(event.turn) || typeof useId !== "string") return;
  const tools = turnOf(visit, event.turn).tools;
  const tool = {
    tool_use_id: useId,
    name: String(event.name || ""),
    input: event.input === undefined ? null : event.input,
    content: String(event.content || ""),
    is_error: Boolean(event.is_error),
    rejected: isObject(event.rejected) ? { ...event.rejected } : null,
    source: textOrNull(event.source),
  };
  const at = tools.findIndex((known) => known.tool_use_id === useId);
  if (at >= 0) tools[at] = tool;
  else tools.push(tool);
}

const copyTurns = (turns) => turns.map((turn) => ({ ...turn, tools: turn.tools.map((tool) => ({ ...tool })) }));

class Visit {
  constructor(node, iteration, epoch) {
    Object.assign(this, {
      node: node, iteration: iteration, status: "queued", inputs: null, output: null,
      detail: null, model: null, usage: null, usage_by_model: null, cost_usd: null,
      saved_usd: null, provider_saved_usd: null, priced: false, cached: null, reused: null,
      child_runs: [], attempts: 1,
      retries: [],
      error: "", cancelled: false, continued: false, started_ts: null, ended_ts: null,
      duration_s: null, progress: null, items: null, turns: [],
    });
    // Streamed pieces, joined when read: the answer's, and the model's thinking.
    Object.defineProperty(this, "parts", { value: [], writable: true });
    Object.defineProperty(this, "thought", { value: [], writable: true });
    // The RunLog copy that may change this visit in place (see RunLog.copy).
    Object.defineProperty(this, "epoch", { value: epoch });
  }

  get text() {
    if (this.parts.length > 1) this.parts = [this.parts.join("")];
    return this.parts.length ? this.parts[0] : "";
  }

  get thinking() {
    if (this.thought.length > 1) this.thought = [this.thought.join("")];
    return this.thought.length ? this.thought[0] : "";
  }

  get settled() {
    return SETTLED.has(this.status);
  }

  /** The same visit, to change instead of this one, which a copied RunLog shares. */
  copy(epoch) {
    const visit = Object.assign(new Visit(this.node, this.iteration, epoch), this);
    // Retries are appended, never changed; the streamed pieces likewise.
    visit.retries = this.retries.slice();
    visit.parts = this.parts.slice();
    visit.thought = this.thought.slice();
    // A map's items change in place (itemEvent), so each gets its own copy.
    visit.items = copyItems(this.items);
    // An agent's turns change in place too (their tools).
    visit.turns = copyTurns(this.turns);
    return visit;
  }

  toJSON() {
    return {
      node: this.node, iteration: this.iteration, status: this.status, inputs: this.inputs,
      text: this.text, thinking: this.thinking, output: this.output, detail: this.detail,
      model: this.model,
      usage: this.usage, usage_by_model: this.usage_by_model, cost_usd: this.cost_usd,
      saved_usd: this.saved_usd, provider_saved_usd: this.provider_saved_usd,
      priced: this.priced, cached: this.cached, reused: this.reused,
      child_runs: [...this.child_runs], attempts: this.attempts, retries: this.retries.map((retry) => ({ ...retry })),
      error: this.error, cancelled: this.cancelled, continued: this.continued,
      started_ts: this.started_ts, ended_ts: this.ended_ts, duration_s: this.duration_s,
      progress: this.progress, items: copyItems(this.items), turns: copyTurns(this.turns),
    };
  }
}

export class RunLog {
  constructor() {
    this.reset();
  }

  reset() {
    this.status = "queued";
    this.schema = DEFAULT_SCHEMA;
    this.inputs = {};
    this.outputs = {};
    this.error = "";
    this.usage = zero();
    this.usageByModel = {};
    this.costUsd = null;
    this.savedUsd = null;
    this.providerSavedUsd = null;
    this.cacheHits = 0;
    this.startedTs = null;
    this.finishedTs = null;
    this.durationS = null;
    this.lastSeq = 0;
    this.lastTs = null;
    this.budgetUsd = null;
    this.paused = null;
    this.byKey = new Map(); // "node\0iteration" -> visit, in the order first seen
    this.byNode = new Map(); // node -> Map(iteration -> visit)
    this.last = new Map(); // node -> the visit its latest event was about
    this.epoch = {}; // what this log's own visits carry (see copy())
    // Visits open (begun, not ended) and how many of them wait: the run waits when the
    // two are the same (and not zero), counted so no event scans every visit.
    this.open = 0;
    this.waits = 0;
  }

  // Reading -------------------------------------------------------------------------

  nodes() {
    return [...this.byNode.keys()];
  }

  visits(node) {
    if (node === undefined) return [...this.byKey.values()];
    const byIteration = this.byNode.get(node);
    if (!byIteration) return [];
    return [...byIteration.keys()].sort((a, b) => a - b).map((i) => byIteration.get(i));
  }

  lastVisit(node) {
    return this.last.get(node) || null;
  }

  openVisits() {
    return this.visits().filter((visit) => !visit.settled).map((visit) => [visit.node, visit.iteration]);
  }

  finalStates() {
    const states = {};
    for (const [node, visit] of this.last) {
      states[node] = visit.settled || visit.status === "waiting" ? visit.status : "running";
    }
    return states;
  }

  /** The same state, for the browser's replay to seek to: the two logs share their visits,
      and each changes a visit by replacing it with a copy, so taking one costs a few maps. */
  copy() {
    const log = Object.assign(Object.create(RunLog.prototype), this);
    log.usage = { ...this.usage };
    log.usageByModel = {};
    for (const [model, usage] of Object.entries(this.usageByModel)) log.usageByModel[model] = { ...usage };
    log.byKey = new Map(this.byKey);
    log.byNode = new Map();
    for (const [node, byIteration] of this.byNode) log.byNode.set(node, new Map(byIteration));
    log.last = new Map(this.last);
    // Neither owns the visits it has now.
    this.epoch = {};
    log.epoch = {};
    return log;
  }

  toJSON() {
    const usageByModel = {};
    for (const [model, usage] of Object.entries(this.usageByModel)) usageByModel[model] = { ...usage };
    const nodes = {};
    for (const node of this.byNode.keys()) nodes[node] = this.visits(node).map((v) => v.toJSON());
    return {
      status: this.status, schema: this.schema, inputs: this.inputs, outputs: this.outputs,
      error: this.error, usage: { ...this.usage }, usage_by_model: usageByModel,
      cost_usd: this.costUsd, saved_usd: this.savedUsd,
      provider_saved_usd: this.providerSavedUsd, cache_hits: this.cacheHits,
      started_ts: this.startedTs, finished_ts: this.finishedTs, duration_s: this.durationS,
      last_seq: this.lastSeq, last_ts: this.lastTs, budget_usd: this.budgetUsd,
      paused: this.paused === null ? null : { ...this.paused }, nodes: nodes,
    };
  }

  // Folding -------------------------------------------------------------------------

  apply(event) {
    const seq = event.seq;
    if (isInt(seq)) {
      if (seq <= this.lastSeq) return false;
      this.lastSeq = seq;
    }
    const ts = number(event.ts);
    if (ts !== null) this.lastTs = ts;
    if (event.type === "run_started") this.runStarted(event, ts);
    else if (event.type === "run_finished") this.runFinished(event, ts);
    else if (event.type === "run_paused") {
      this.paused = {};
      for (const key of PAUSED) this.paused[key] = key in event ? event[key] : null;
      this.budgetUsd = number(event.budget_usd);
    } else if (event.type === "run_resumed") {
      this.paused = null;
      this.budgetUsd = number(event.budget_usd);
    } else if (typeof event.node === "string") this.nodeEvent(event.type, event.node, event, ts);
    return true;
  }

  runStarted(event, ts) {
    // A log begins here: anything before it belonged to no run.
    const lastSeq = this.lastSeq;
    this.reset();
    this.lastSeq = lastSeq;
    this.lastTs = ts;
    this.status = "running";
    this.schema = event.schema || DEFAULT_SCHEMA;
    this.inputs = object(event.inputs);
    this.startedTs = ts;
  }

  runFinished(event, ts) {
    this.status = event.status || "failed";
    this.outputs = object(event.outputs);
    this.error = String(event.error || "");
    this.finishedTs = ts;
    // The run's own figures count what node events cannot show.
    if (isObject(event.usage)) {
      this.usage = zero();
      addUsage(this.usage, event.usage);
    }
    if (isObject(event.usage_by_model)) {
      this.usageByModel = {};
      for (const [model, usage] of Object.entries(event.usage_by_model)) {
        if (!(model in this.usageByModel)) this.usageByModel[model] = zero();
        addUsage(this.usageByModel[model], usage);
      }
    }
    if ("cost_usd" in event) this.costUsd = number(event.cost_usd);
    if ("saved_usd" in event) this.savedUsd = number(event.saved_usd);
    if ("provider_saved_usd" in event) this.providerSavedUsd = number(event.provider_saved_usd);
    if (isInt(event.cache_hits)) this.cacheHits = event.cache_hits;
    let duration = number(event.duration_s);
    if (duration === null && ts !== null && this.startedTs !== null) duration = ts - this.startedTs;
    this.durationS = duration;
  }

  visit(node, iteration) {
    const key = node + "\u0000" + iteration;
    let visit = this.byKey.get(key);
    if (!visit) {
      visit = new Visit(node, iteration, this.epoch);
      this.byKey.set(key, visit);
      if (!this.byNode.has(node)) this.byNode.set(node, new Map());
      this.byNode.get(node).set(iteration, visit);
      this.open += 1;
    } else if (visit.epoch !== this.epoch) {
      // Shared with a copy: change one of this log's own.
      visit = visit.copy(this.epoch);
      this.byKey.set(key, visit);
      this.byNode.get(node).set(iteration, visit);
    }
    this.last.set(node, visit);
    return visit;
  }

  nodeEvent(kind, node, event, ts) {
    let iteration = event.iteration;
    if (!isInt(iteration) || iteration < 1) iteration = 1;
    const visit = this.visit(node, iteration);
    const was = visit.status;
    this.visitEvent(kind, visit, event, ts);
    if (visit.status !== was) {
      this.open += SETTLED.has(was) - SETTLED.has(visit.status);
      this.waits += (visit.status === "waiting") - (was === "waiting");
    }
    if (this.status === "running" || this.status === "waiting") {
      this.status = this.waits && this.waits === this.open ? "waiting" : "running";
    }
  }

  visitEvent(kind, visit, event, ts) {
    if (kind === "node_started") {
      // Again after a takeover: the node runs anew elsewhere, its stream too.
      visit.status = "running";
      visit.inputs = object(event.inputs);
      visit.started_ts = ts;
      visit.ended_ts = null;
      visit.parts = [];
      visit.thought = [];
      visit.items = null;
    } else if (kind === "node_delta") {
      visit.parts.push(String(event.text || ""));
    } else if (kind === "node_thinking") {
      visit.thought.push(String(event.text || ""));
    } else if (kind === "node_progress") {
      visit.progress = { done: field(event, "done"), total: field(event, "total") };
    } else if (kind === "node_item") {
      itemEvent(visit, event);
    } else if (kind === "node_retrying") {
      visit.parts = [];
      visit.thought = [];
      visit.items = null;
      visit.retries.push({
        attempt: field(event, "attempt"),
        error: String(event.error || ""),
        delay_s: event.delay_s || 0,
        takeover: Boolean(event.takeover),
      });
      visit.attempts = visit.retries.length + 1;
    } else if (kind === "node_finished") {
      this.nodeFinished(visit, event, ts);
    } else if (kind === "node_failed") {
      visit.cancelled = Boolean(event.cancelled);
      visit.status = visit.cancelled ? "cancelled" : "failed";
      visit.continued = Boolean(event.continued);
      visit.error = String(event.error || "");
      visit.ended_ts = ts;
    } else if (kind === "node_skipped") {
      visit.status = "skipped";
      visit.ended_ts = ts;
    } else if (kind === "node_waiting") {
      // What it waits for shows as its detail until its answer's node_finished.
      visit.status = "waiting";
      visit.detail = { wait: object(event.wait) };
      const waitsFor = visit.detail.wait.kind;
      if (waitsFor === "breakpoint") {
        // Paused before it starts: what it would run on are its inputs so far.
        visit.inputs = object(visit.detail.wait.inputs);
      }
    } else if (kind === "node_resumed") {
      visit.status = "running";
      // A breakpoint's answer: the inputs, maybe edited.
      if ("inputs" in event) visit.inputs = object(event.inputs);
    } else if (kind === "agent_turn") {
      agentTurn(visit, event);
    } else if (kind === "agent_tool") {
      agentTool(visit, event);
    } else if (kind === "batch_sent") {
      // For the node to find again (graphs/llm/batch.py); its wait shows the batch.
    }
    if (RUNNING.has(kind) && visit.status === "queued") {
      visit.status = "running";
    }
  }

  nodeFinished(visit, event, ts) {
    visit.status = "done";
    visit.error = "";
    visit.output = object(event.output);
    visit.detail = isObject(event.detail) ? { ...event.detail } : null;
    visit.duration_s = number(event.duration_s);
    visit.ended_ts = ts;
    if (isInt(event.attempts)) visit.attempts = Math.max(visit.attempts, event.attempts);
    visit.model = typeof event.model === "string" ? event.model : null;
    visit.usage = isObject(event.usage) ? { ...event.usage } : null;
    visit.usage_by_model = isObject(event.usage_by_model) ? { ...event.usage_by_model } : null;
    visit.priced = "cost_usd" in event || "saved_usd" in event;
    visit.cost_usd = number(event.cost_usd);
    visit.saved_usd = number(event.saved_usd);
    visit.provider_saved_usd = number(event.provider_saved_usd);
    visit.cached = origin(event.cached);
    visit.reused = origin(event.reused);
    visit.child_runs = runIds(event.child_runs);
    // The run's running totals, until its run_finished gives its own.
    addUsage(this.usage, event.usage);
    if (visit.usage_by_model && Object.keys(visit.usage_by_model).length) {
      for (const [name, ofModel] of Object.entries(visit.usage_by_model)) {
        if (!(name in this.usageByModel)) this.usageByModel[name] = zero();
        addUsage(this.usageByModel[name], ofModel);
      }
    } else if (visit.model !== null && visit.usage !== null) {
      if (!(visit.model in this.usageByModel)) this.usageByModel[visit.model] = zero();
      addUsage(this.usageByModel[visit.model], event.usage);
    }
    this.costUsd = plus(this.costUsd, event.cost_usd);
    this.savedUsd = plus(this.savedUsd, event.saved_usd);
    this.providerSavedUsd = plus(this.providerSavedUsd, event.provider_saved_usd);
    if (visit.cached !== null) this.cacheHits += 1;
  }
}

export function fold(events) {
  const log = new RunLog();
  for (const event of events) log.apply(event);
  return log;
}
