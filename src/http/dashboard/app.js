// The dashboard: sign in with a bearer token (kept in sessionStorage, sent only in the
// Authorization header), list the sessions this user may see, and show one session's scene
// and history, kept live by the server's event stream (a WebSocket opened with a one-use
// ticket, resumed with `since` after a drop). Plain DOM code: every piece of data is set
// with textContent, never parsed as HTML.
"use strict";

(() => {
  const TOKEN_KEY = "bsm.dashboard.token";
  const OBJECT_LIMIT = 200;
  const HISTORY_LIMIT = 50;
  const SEARCH_DEBOUNCE_MS = 250;
  const BACKOFF_MIN_MS = 500;
  const BACKOFF_MAX_MS = 15000;

  const $ = (id) => document.getElementById(id);
  const st = {
    token: null,
    sessions: new Map(), // session_id -> SessionInfo
    selected: null,
    lastEventId: 0,
    ws: null,
    backoff: BACKOFF_MIN_MS,
    retryTimer: null,
    searchTimer: null,
    objectsRequest: 0,
    listRequest: 0,
    seqs: new Set(), // history entries shown for the selected session
    shot: null, // the screenshot's object URL
  };

  class ApiError extends Error {
    constructor(status, message) { super(message); this.status = status; }
  }

  // An element with a class and text.
  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }

  const show = (node, visible) => { node.hidden = !visible; };
  const showError = (node, message) => {
    node.textContent = message || "";
    show(node, Boolean(message));
  };

  // One API call with the token; JSON back (or the Response itself when `raw`).
  async function api(method, path, raw) {
    if (!st.token) throw new ApiError(401, "not signed in");
    let r;
    try {
      r = await fetch(path, {
        method,
        cache: "no-store",
        headers: { Authorization: "Bearer " + st.token, Accept: "application/json" },
      });
    } catch (e) {
      throw new ApiError(0, "the server cannot be reached (" + e.message + ")");
    }
    if (!r.ok) {
      let message = r.status + " " + r.statusText;
      const body = await r.json().catch(() => null); // not JSON: keep the status line
      if (body && typeof body.error === "string") message = body.error;
      if (r.status === 401 && path !== "/api/me") signOut(message);
      throw new ApiError(r.status, message);
    }
    return raw ? r : r.json();
  }

  const enc = encodeURIComponent;

  // "12 s ago", "3 min ago", …
  function ago(unixSeconds) {
    if (typeof unixSeconds !== "number") return "never";
    const s = Math.max(0, Date.now() / 1000 - unixSeconds);
    if (s < 60) return Math.floor(s) + " s ago";
    if (s < 3600) return Math.floor(s / 60) + " min ago";
    if (s < 86400) return Math.floor(s / 3600) + " h ago";
    return Math.floor(s / 86400) + " d ago";
  }

  // ---- sign-in ----------------------------------------------------------------------

  async function signIn(token) {
    st.token = token;
    const me = await api("GET", "/api/me").catch((e) => { st.token = null; throw e; });
    sessionStorage.setItem(TOKEN_KEY, token);
    $("user").textContent = me.user + (me.rights === "read" ? " (read only)" : "");
    for (const [id, on] of [["user", 1], ["signout", 1], ["signin", 0], ["app", 1]]) show($(id), on);
    connect();
    await loadSessions();
  }

  function signOut(message) {
    st.token = null;
    sessionStorage.removeItem(TOKEN_KEY);
    clearTimeout(st.retryTimer);
    if (st.ws) {
      st.ws.onclose = null;
      st.ws.close();
      st.ws = null;
    }
    st.sessions.clear();
    st.lastEventId = 0;
    select(null);
    $("sessions").replaceChildren();
    for (const [id, on] of [["user", 0], ["signout", 0], ["signin", 1], ["app", 0]]) show($(id), on);
    showError($("signin-error"), message);
    setConn("offline");
    $("token").value = "";
    $("token").focus();
  }

  // ---- the session list -------------------------------------------------------------

  async function loadSessions() {
    const request = ++st.listRequest;
    try {
      const body = await api("GET", "/api/sessions");
      if (request !== st.listRequest) return;
      st.sessions.clear();
      for (const s of body.sessions || []) st.sessions.set(s.session_id, s);
      showError($("sessions-error"), "");
    } catch (e) {
      showError($("sessions-error"), e.message);
      return;
    }
    renderSessions();
    if (st.selected) renderDetailHead();
  }

  function sessionItem(s) {
    const li = el("li");
    li.dataset.sessionId = s.session_id;
    li.dataset.status = s.status;
    li.classList.toggle("selected", s.session_id === st.selected);
    const title = el("div", "title", s.name || s.session_id);
    if (s.busy) title.append(el("span", "mark busy", "busy"));
    const connected = s.blender && s.blender.connected;
    title.append(el("span", "mark " + (connected ? "connected" : "disconnected"),
      connected ? "connected" : "not connected"));
    const b = s.blender || {};
    const meta = el("div", "meta",
      [s.owner, (b.host || "?") + ":" + (b.port || "?"), s.status,
        (s.command_count || 0) + " commands"].join(" · ") + " · ");
    const rel = el("span", "rel", ago(s.last_activity));
    rel.dataset.at = String(s.last_activity);
    meta.append(rel);
    li.append(title, meta);
    if (s.name) li.title = s.session_id;
    return li;
  }

  function renderSessions() {
    const list = [...st.sessions.values()].sort((a, b) =>
      (a.status === b.status ? 0 : a.status === "open" ? -1 : 1) ||
      (b.last_activity || 0) - (a.last_activity || 0));
    $("sessions").replaceChildren(...list.map(sessionItem));
    show($("sessions-empty"), list.length === 0);
  }

  function updateSession(id, change) {
    const s = st.sessions.get(id);
    if (!s) return false;
    change(s);
    renderSessions();
    if (id === st.selected) renderDetailHead();
    return true;
  }

  // ---- one session ------------------------------------------------------------------

  function select(id) {
    st.selected = id;
    st.seqs.clear();
    $("history").replaceChildren();
    $("objects").replaceChildren();
    $("types").replaceChildren();
    $("object-search").value = "";
    if (st.shot) URL.revokeObjectURL(st.shot);
    st.shot = null;
    show($("screenshot-area"), false);
    showError($("detail-error"), "");
    for (const li of $("sessions").children) li.classList.toggle("selected", li.dataset.sessionId === id);
    $("detail").dataset.sessionId = id || "";
    show($("detail-empty"), !id);
    show($("detail-body"), Boolean(id));
    if (!id) return;
    renderDetailHead();
    loadObjects();
    loadHistory(id);
  }

  function renderDetailHead() {
    const s = st.sessions.get(st.selected);
    if (!s) return;
    $("detail-title").textContent = s.name || s.session_id;
    const b = s.blender || {};
    let meta = s.session_id + " · " + s.owner + " · " + (b.host || "?") + ":" + (b.port || "?") +
      " · " + s.status + (s.busy ? " · busy" : "");
    if (b.last_error) meta += " · " + b.last_error;
    $("detail-meta").textContent = meta;
    const state = s.state || {};
    const sel = state.selection || {};
    const selected = sel.selected || [];
    const count = state.selected_count || selected.length;
    let text = "Active: " + (sel.active || "none") + " · Selected (" + count + "): " +
      (selected.length ? selected.join(", ") : "none");
    if (count > selected.length) text += ", …";
    $("selection").textContent = text;
    $("object-count").textContent = "(" + (state.object_count || 0) + " objects)";
  }

  async function loadObjects() {
    const id = st.selected;
    if (!id) return;
    const request = ++st.objectsRequest;
    const q = $("object-search").value.trim();
    let body;
    try {
      body = await api("GET", "/api/sessions/" + enc(id) + "?q=" + enc(q) +
        "&offset=0&limit=" + OBJECT_LIMIT);
    } catch (e) {
      if (request === st.objectsRequest) showError($("detail-error"), e.message);
      return;
    }
    if (request !== st.objectsRequest || id !== st.selected) return;
    showError($("detail-error"), "");
    if (body.session) {
      st.sessions.set(id, body.session);
      renderSessions();
      renderDetailHead();
    }
    const state = (body.session && body.session.state) || {};
    const sel = state.selection || {};
    const selected = new Set(sel.selected || []);
    const types = Object.entries(body.types || {}).sort((a, b) => b[1] - a[1]);
    // Tracked state has names only: the by-type list, when asked for, stays.
    if (types.length) $("types").replaceChildren(...types.map(([type, n]) => {
      const li = el("li", null, type + " " + n);
      li.dataset.type = type;
      return li;
    }));
    const objects = body.objects || [];
    $("objects").replaceChildren(...objects.map((o) => {
      const li = el("li");
      li.dataset.name = o.name;
      li.classList.toggle("active", o.name === sel.active);
      li.classList.toggle("selected-object", selected.has(o.name));
      li.append(el("span", "name", o.name), el("span", "type", o.type || ""));
      return li;
    }));
    const matched = typeof body.matched === "number" ? body.matched : objects.length;
    $("objects-matched").textContent = (q ? matched + " match “" + q + "”" : matched + " objects") +
      (matched > objects.length ? " (first " + objects.length + " shown)" : "");
  }

  // Objects by type come from Blender itself (get_scene_info), on request; a type's
  // objects are listed on a click.
  async function loadTypes(type) {
    const id = st.selected;
    if (!id) return;
    let info;
    try {
      info = await api("GET", "/api/sessions/" + enc(id) + "/scene?limit=" + OBJECT_LIMIT +
        (type ? "&type=" + enc(type) : ""));
    } catch (e) {
      showError($("detail-error"), e.message);
      return;
    }
    const types = Object.entries(info.objects_by_type || {}).sort((a, b) => b[1] - a[1]);
    $("types").replaceChildren(...types.map(([t, n]) => {
      const li = el("li", t === type ? "active" : null, t + " " + n);
      li.dataset.type = t;
      return li;
    }));
    if (!type) return;
    $("objects").replaceChildren(...(info.objects || []).map((o) => {
      const li = el("li");
      li.dataset.name = o.name;
      li.append(el("span", "name", o.name), el("span", "type", o.type || ""));
      return li;
    }));
    $("objects-matched").textContent = info.matched + " of type " + type;
  }

  async function loadHistory(id) {
    let body;
    try {
      body = await api("GET", "/api/sessions/" + enc(id) + "/history?limit=" + HISTORY_LIMIT);
    } catch (e) {
      if (id === st.selected) showError($("detail-error"), e.message);
      return;
    }
    if (id !== st.selected) return;
    for (const entry of body.entries || []) addEntry(entry);
    show($("history-empty"), st.seqs.size === 0);
  }

  // Code with one numbered line per line (the numbers come from CSS counters).
  function codeBlock(text) {
    const pre = el("pre", "code");
    for (const line of String(text).replace(/\n$/, "").split("\n")) {
      pre.append(el("span", "line", line));
    }
    return pre;
  }

  function entryItem(e) {
    const li = el("li");
    li.dataset.seq = String(e.seq);
    li.dataset.outcome = e.outcome;
    const head = el("div", "entry-head");
    head.append(el("span", "seq", "#" + e.seq), el("span", "tool", e.tool || e.command),
      el("span", "outcome " + e.outcome, e.outcome),
      el("span", "muted", (Number(e.duration) || 0).toFixed(3) + " s"),
      el("span", "muted", new Date(e.timestamp * 1000).toLocaleTimeString()));
    li.append(head);
    const args = e.arguments || {};
    if (typeof args.code === "string") {
      li.append(codeBlock(args.code));
    } else if (Object.keys(args).length) {
      li.append(codeBlock(JSON.stringify(args, null, 2)));
    }
    if (e.result !== undefined && e.result !== null) {
      const r = e.result;
      const text = typeof r === "string" ? r
        : r && typeof r.result === "string" && Object.keys(r).length === 1 ? r.result
          : JSON.stringify(r, null, 2);
      if (text !== "") li.append(el("pre", "output", text));
    }
    if (e.message) li.append(el("pre", e.outcome === "success" ? "output" : "traceback", e.message));
    if (e.note) li.append(el("div", "note", e.note));
    return li;
  }

  // Insert an entry in seq order, once.
  function addEntry(entry) {
    if (st.seqs.has(entry.seq)) return;
    st.seqs.add(entry.seq);
    const item = entryItem(entry);
    const list = $("history");
    const before = [...list.children].find((li) => Number(li.dataset.seq) > entry.seq) || null;
    list.insertBefore(item, before);
    show($("history-empty"), false);
    if (!before) item.scrollIntoView({ block: "nearest" });
  }

  async function screenshot() {
    const id = st.selected;
    if (!id) return;
    const button = $("screenshot-btn");
    button.disabled = true;
    show($("screenshot-area"), true);
    showError($("screenshot-error"), "");
    try {
      const r = await api("POST", "/api/sessions/" + enc(id) + "/screenshot", true);
      const blob = await r.blob();
      if (id !== st.selected) return;
      if (st.shot) URL.revokeObjectURL(st.shot);
      st.shot = URL.createObjectURL(blob);
      $("screenshot-img").src = st.shot;
      show($("screenshot-img"), true);
    } catch (e) {
      show($("screenshot-img"), false);
      showError($("screenshot-error"), "No screenshot: " + e.message);
    } finally {
      button.disabled = false;
    }
  }

  // ---- the event stream -------------------------------------------------------------

  function setConn(state) {
    const c = $("conn-status");
    c.dataset.state = state;
    c.textContent = state;
  }

  function scheduleReconnect(offline) {
    if (!st.token) return;
    setConn(offline || !navigator.onLine ? "offline" : "reconnecting");
    clearTimeout(st.retryTimer);
    const wait = st.backoff * (0.75 + Math.random() * 0.5);
    st.backoff = Math.min(st.backoff * 2, BACKOFF_MAX_MS);
    st.retryTimer = setTimeout(connect, wait);
  }

  async function connect() {
    clearTimeout(st.retryTimer);
    if (!st.token || st.ws) return;
    let ticket;
    try {
      ticket = (await api("POST", "/api/ticket")).ticket;
    } catch (e) {
      if (e.status !== 401) scheduleReconnect(e.status === 0);
      return;
    }
    if (!st.token || st.ws) return;
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    let url = scheme + "//" + location.host + "/ws?ticket=" + enc(ticket);
    const resuming = st.lastEventId > 0;
    if (resuming) url += "&since=" + st.lastEventId;
    let ws;
    try { ws = new WebSocket(url); } catch (_) { scheduleReconnect(false); return; }
    st.ws = ws;
    ws.onopen = () => {
      st.backoff = BACKOFF_MIN_MS;
      setConn("connected");
      // Without `since` nothing is replayed: what changed while we were away is reloaded.
      if (!resuming) reloadAll();
    };
    ws.onmessage = (m) => {
      let ev = null;
      try { ev = JSON.parse(m.data); } catch (_) { /* not an event: ignored */ }
      if (ev && typeof ev === "object") handleEvent(ev);
    };
    ws.onclose = () => {
      if (st.ws === ws) st.ws = null;
      scheduleReconnect(false);
    };
  }

  function reloadAll() {
    loadSessions();
    if (st.selected) {
      loadObjects();
      loadHistory(st.selected);
    }
  }

  let reloadSoon = null;
  function reloadListSoon() {
    clearTimeout(reloadSoon);
    reloadSoon = setTimeout(loadSessions, 100);
  }

  function handleEvent(ev) {
    if (typeof ev.id === "number") {
      if (ev.id <= st.lastEventId) return; // replayed twice
      st.lastEventId = ev.id;
    }
    const id = ev.session_id;
    const at = typeof ev.at === "number" ? ev.at : Date.now() / 1000;
    switch (ev.event) {
      case "resync":
        reloadAll();
        break;
      case "session_created":
        reloadListSoon(); // the list says what this user may see of it
        break;
      case "session_closed":
        updateSession(id, (s) => Object.assign(s, { status: "closed", busy: false }));
        break;
      case "command_started":
        updateSession(id, (s) => Object.assign(s, { busy: true, last_activity: at }));
        break;
      case "command_finished":
        if (!updateSession(id, (s) => Object.assign(s, {
          busy: false, last_activity: at, command_count: (s.command_count || 0) + 1,
        }))) reloadListSoon();
        if (id === st.selected && ev.entry) addEntry(ev.entry);
        break;
      case "state_changed":
        updateSession(id, (s) => {
          s.state = s.state || {};
          if (typeof ev.object_count === "number") s.state.object_count = ev.object_count;
          if (ev.selection) s.state.selection = ev.selection;
        });
        if (id === st.selected) searchSoon(0);
        break;
      case "connection":
        updateSession(id, (s) => {
          s.blender = Object.assign(s.blender || {}, { connected: Boolean(ev.connected), last_error: ev.error || null });
        });
        break;
      default: // a kind this page does not know yet
    }
  }

  function searchSoon(delay) {
    clearTimeout(st.searchTimer);
    st.searchTimer = setTimeout(loadObjects, delay);
  }

  // ---- wiring -----------------------------------------------------------------------

  function start() {
    $("signin-form").addEventListener("submit", async (e) => {
      e.preventDefault();
      const token = $("token").value.trim();
      if (!token) return;
      $("signin-submit").disabled = true;
      showError($("signin-error"), "");
      try {
        await signIn(token);
      } catch (err) {
        showError($("signin-error"),
          err.status === 401 ? "That token is not valid." : "Sign-in failed: " + err.message);
      } finally {
        $("signin-submit").disabled = false;
      }
    });
    $("signout").addEventListener("click", () => signOut(""));
    $("reload").addEventListener("click", reloadAll);
    $("sessions").addEventListener("click", (e) => {
      const li = e.target.closest("li[data-session-id]");
      if (li) select(li.dataset.sessionId);
    });
    $("object-search").addEventListener("input", () => searchSoon(SEARCH_DEBOUNCE_MS));
    $("screenshot-btn").addEventListener("click", screenshot);
    $("types-btn").addEventListener("click", () => loadTypes(""));
    $("types").addEventListener("click", (e) => {
      const li = e.target.closest("li[data-type]");
      if (li) loadTypes(li.dataset.type);
    });
    window.addEventListener("online", () => {
      st.backoff = BACKOFF_MIN_MS;
      if (st.token && !st.ws) connect();
    });
    window.addEventListener("offline", () => st.token && !st.ws && setConn("offline"));
    setInterval(() => {
      for (const span of document.querySelectorAll("#sessions .rel")) span.textContent = ago(Number(span.dataset.at));
    }, 5000);

    const saved = sessionStorage.getItem(TOKEN_KEY);
    if (saved) signIn(saved).catch((e) => signOut(e.status === 401 ? "Your token is no longer valid." : e.message));
    else signOut("");
  }

  start();
})();
