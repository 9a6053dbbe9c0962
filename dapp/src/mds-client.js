// A minimal client of a Minima node's MiniDapp system (MDS), for the MiniDapp's page: an ES module of our own, written
// from the wire facts of real nodes (fixtures 190-199e), not from Minima's mds.js. It is not named mds.js: a node
// answers any request for a file of that name with its own library (MDSFileHandler). The facts:
// - every call is `POST /mdscommand_/<kind>?uid=<sessionid>` (the sessionid is the page's `?uid=`), the body
//   encodeURIComponent(payload), the answer JSON; an unknown uid is HTTP 500 with no body;
// - `cmd` runs a node command line (`;` splits several: the answer is then an array); in READ mode a command that
//   needs the user's approval answers `status:false, pending:true, pendinguid`, and the verdict comes later as an
//   `MDS_PENDING` event `{uid, accept, status, result}`;
// - `net` / `netpost` make the NODE do an HTTP GET / POST (`url&data`: the URL ends at the first `&`); the answer is
//   `{status, response:"<body>"}`. The node counts only HTTP 200 (a POST answered otherwise is `status:false`, a
//   GET answered otherwise has an empty body), sends no header of the caller's and joins the body's lines;
// - `keypair` (`get&key`, `set&key&value`) and `sql` are this MiniDapp's own storage on the node; `api` is
//   `<dapp name>&request|response&<id>&<text>` between MiniDapps;
// - events: `POST /mdscommand_/megapoll` with the body `series=<s>&counter=<n>` (not encoded) answers the events
//   queued since `n` as `{series, counter, status:true, response:[{to, counter, message:{event, data}}]}`, or
//   `status:false` with the current series and counter when `s` is not the node's.

const POLL_MS = 1000;

export class MDS {
  /** `sessionid`: the page's `?uid=`; `base`: the MDS origin (the page's own by default). */
  constructor({ sessionid, base = "", fetcher = globalThis.fetch.bind(globalThis) }) {
    if (!sessionid) throw new Error("MDS needs the page's ?uid= (the MiniDapp's session id)");
    this.sessionid = sessionid;
    this.base = base;
    this.fetcher = fetcher;
    this.listeners = new Set();
    this.apiWaiting = new Map();
    this.series = "0";
    this.counter = 0;
    this.polling = false;
  }

  /** The MDS session of this page, or null outside MDS. */
  static fromLocation(location) {
    const sessionid = new URLSearchParams(location.search).get("uid");
    return sessionid ? new MDS({ sessionid }) : null;
  }

  async post(kind, body, { encode = true } = {}) {
    const url = `${this.base}/mdscommand_/${kind}?uid=${encodeURIComponent(this.sessionid)}`;
    const response = await this.fetcher(url, {
      method: "POST",
      headers: { "Content-Type": "text/plain; charset=UTF-8" },
      body: encode ? encodeURIComponent(body) : body,
      cache: "no-store",
    });
    if (response.status !== 200) throw new MDSError(`MDS answered HTTP ${response.status} to ${kind}`);
    return JSON.parse(await response.text());
  }

  cmd(line) {
    return this.post("cmd", line);
  }

  sql(statement) {
    return this.post("sql", statement);
  }

  netGet(url) {
    return this.post("net", url);
  }

  netPost(url, data) {
    if (url.includes("&")) throw new MDSError("an MDS POST URL cannot contain '&' (the node splits there)");
    return this.post("netpost", `${url}&${data}`);
  }

  async keypairGet(key) {
    const reply = await this.post("keypair", `get&${key}`);
    return reply.status ? reply.value : null;
  }

  keypairSet(key, value) {
    return this.post("keypair", `set&${key}&${value}`);
  }

  /** Ask another MiniDapp (by its dapp.conf name) through its service.js; resolves `{status, data}`. */
  apiCall(dappName, text) {
    const id = String(Math.floor(Math.random() * 1e15));
    const answer = new Promise((resolve) => this.apiWaiting.set(id, resolve));
    this.post("api", `${dappName}&request&${id}&${text}`).catch(() => this.settleApi(id, { status: false, data: "" }));
    this.start();
    return answer;
  }

  settleApi(id, reply) {
    const resolve = this.apiWaiting.get(id);
    if (!resolve) return false;
    this.apiWaiting.delete(id);
    resolve(reply);
    return true;
  }

  /** `listener(event, data)` for every event of this MiniDapp; the poll starts with the first listener. */
  on(listener) {
    this.listeners.add(listener);
    this.start();
    return () => this.listeners.delete(listener);
  }

  start() {
    if (this.polling) return;
    this.polling = true;
    this.loop();
  }

  stop() {
    this.polling = false;
  }

  async loop() {
    while (this.polling) {
      try {
        await this.pollOnce();
      } catch {
        // the node restarted or the network hiccuped: the next round asks again from where we were
      }
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    }
  }

  async pollOnce() {
    const reply = await this.post("megapoll", `series=${this.series}&counter=${this.counter}`, { encode: false });
    if (!reply.status) {
      // first call, or the node restarted: events from now on
      this.series = reply.series;
      this.counter = reply.counter;
      return;
    }
    this.counter = reply.counter;
    for (const item of reply.response || []) this.dispatch(item.message || {});
  }

  dispatch(message) {
    const { event, data } = message;
    if (event === "MDSAPI" && data && data.request === false && this.settleApi(String(data.id), { status: data.status, data: data.message })) {
      return;
    }
    for (const listener of this.listeners) listener(event, data);
  }
}

export class MDSError extends Error {}
