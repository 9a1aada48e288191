/* follower.js — a run's events, live, over the websocket /ws/runs/<id>/?after=SEQ.

   Events arrive in seq order; on an unexpected close it reconnects after the last seq it
   saw, with backoff, so nothing is lost or applied twice. While the socket is quiet it
   pings every few seconds, and the server answers with whatever the database holds that
   the channel layer did not bring (Redis down). It stops by itself after run_finished.
*/
import { ReconnectingSocket, socketURL } from "../lib/net.js";

const ACCESS_REVOKED = 4403;
// The token or session that opened the socket is gone (signed out): asking again is refused.
const SIGNED_OUT = 4401;
// The server could not reach its channel layer: it sent what it had; come back for more.
const LAYER_DOWN = 4503;

export class Follower {
  /** handlers: onEvents(events), onConnection("live" | "reconnecting" | "revoked" | "signed-out"). */
  constructor(runId, handlers, options) {
    this.runId = runId;
    this.handlers = handlers;
    this.lastSeq = (options && options.after) || 0;
    // The seqs passed on, in order (for tests and debugging).
    this.seqs = [];
    const connection = (state) => this.handlers.onConnection && this.handlers.onConnection(state);
    this.socket = new ReconnectingSocket(
      () => socketURL("/ws/runs/" + this.runId + "/?after=" + this.lastSeq),
      {
        open: () => connection("live"),
        message: (data) => this.receive(data),
        close: (event) => {
          if (event.code === ACCESS_REVOKED) connection("revoked");
          else if (event.code === SIGNED_OUT) connection("signed-out");
          // LAYER_DOWN is not lost: the backlog came, live updates did not; polled gently.
          else if (event.code !== LAYER_DOWN) connection("reconnecting");
        },
      },
      {
        backoffMs: [250, 500, 1000, 2000, 4000, 8000],
        pingMs: 3000,
        finalCodes: [ACCESS_REVOKED, SIGNED_OUT],
        slowCodes: { [LAYER_DOWN]: 2 },
      },
    );
  }

  /** The open WebSocket, or null between connections. */
  get ws() {
    return this.socket.ws;
  }

  /** Sockets opened so far. */
  get opened() {
    return this.socket.opened;
  }

  receive(data) {
    if (!data || !Array.isArray(data.events)) return;
    const fresh = [];
    let ended = false;
    for (const event of data.events) {
      if (event.seq <= this.lastSeq) continue;
      if (event.seq !== this.lastSeq + 1) {
        // Never expected (the server fills gaps), but if it happens: ask again from here.
        this.socket.drop(4000, "gap");
        break;
      }
      fresh.push(event);
      this.seqs.push(event.seq);
      this.lastSeq = event.seq;
      if (event.type === "run_finished") ended = true;
    }
    if (ended) this.stop();
    if (fresh.length) this.handlers.onEvents(fresh);
  }

  stop() {
    this.socket.stop();
  }
}
