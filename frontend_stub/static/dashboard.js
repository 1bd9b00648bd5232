// Trackit admin dashboard: plain JavaScript, no build step.
// Queries go over HTTP POST /graphql; the live feed is one `reconciliationFeed`
// subscription spoken over the `graphql-transport-ws` protocol directly.
"use strict";

(() => {
  const TOKEN_KEY = "trackit.adminToken";
  const FEED_LIMIT = 200;
  const PAGE = 50;
  const HISTORY = 100;  // audit entries replayed into the feed on sign-in
  const BACKOFF_MIN_MS = 500;
  const BACKOFF_MAX_MS = 10000;
  // A safety net beside the push: it also keeps "oldest waiting" ticking.
  const POLL_MS = 15000;
  const AUTH_CODES = new Set(["UNAUTHENTICATED", "FORBIDDEN"]);

  const BOARD_QUERY = `
    query Board($status: WebhookEventStatus, $first: Int) {
      reconciliationStats { received processing processed ignored retrying dead oldestUnprocessedAgeSeconds }
      webhookEvents(status: $status, first: $first) {
        edges { node { id type status attempts lastError receivedAt processedAt } }
      }
      proSubscriptions(status: PENDING, first: $first) {
        edges { node { id stripeSubscriptionId paymentIntentId updatedAt user { id email name } } }
      }
      debts(status: PENDING_SETTLEMENT, first: $first) {
        edges { node { id amountCents currency transferId paymentIntentId updatedAt
                       debtor { name } creditor { name } group { name } } }
      }
    }`;
  // The newest audit entry id is the feed's sequence at load time: resuming from a
  // little before it shows recent history, and nothing committed between the load
  // and the socket is missed.
  const HEAD_QUERY = `query Head { auditLog(first: 1) { edges { node { id } } } }`;
  const FEED_SUBSCRIPTION = `
    subscription Feed($resumeAfter: Int) {
      reconciliationFeed(resumeAfter: $resumeAfter) {
        sequence entityType entityId fromStatus toStatus at eventId
      }
    }`;
  const RETRY_MUTATION = `
    mutation Retry($id: ID!) { retryWebhookEvent(id: $id) { id status attempts } }`;

  const $ = (id) => document.getElementById(id);

  const state = {
    token: null,
    lastSequence: null,
    socket: null,
    generation: 0,       // bumps on every deliberate disconnect: stale socket callbacks ignore themselves
    offline: false,      // test hook: keep the socket down until goOnline()
    backoffMs: 0,
    reconnectTimer: null,
    refreshTimer: null,
    refreshing: false,
    refreshAgain: false,
    pollTimer: null,
  };

  class ApiError extends Error {
    constructor(message, code) {
      super(message);
      this.code = code;
    }
  }

  // ---- HTTP GraphQL ---------------------------------------------------------

  async function graphql(query, variables) {
    let response;
    try {
      response = await fetch("/graphql", {
        method: "POST",
        headers: { "Content-Type": "application/json", Authorization: `Bearer ${state.token}` },
        body: JSON.stringify({ query, variables: variables || {} }),
      });
    } catch (err) {
      throw new ApiError(`cannot reach the server (${err.message})`, "NETWORK");
    }
    let body;
    try {
      body = await response.json();
    } catch (err) {
      throw new ApiError(`the server answered HTTP ${response.status} without JSON`, `HTTP_${response.status}`);
    }
    if (body.errors && body.errors.length) {
      const first = body.errors[0];
      const code = (first.extensions && first.extensions.code) || (response.status === 401 ? "UNAUTHENTICATED" : "ERROR");
      throw new ApiError(first.message, code);
    }
    if (!response.ok || !body.data) {
      throw new ApiError(`the server answered HTTP ${response.status}`, `HTTP_${response.status}`);
    }
    return body.data;
  }

  // ---- messages ---------------------------------------------------------------

  function showError(text) {
    const box = $("error");
    box.textContent = text;
    box.hidden = !text;
  }

  function showNotice(text) {
    const box = $("notice");
    box.textContent = text;
    box.hidden = !text;
  }

  function setLive(text, kind) {
    const pill = $("live");
    pill.textContent = text;
    pill.className = `pill pill-${kind}`;
  }

  function authFailed(err) {
    const why = err instanceof ApiError ? `${err.message} (${err.code})` : String(err);
    signOut();
    showError(`The server refused this token: ${why}. Paste an admin token ` +
      "(trackit token --admin prints one).");
  }

  function handleFailure(err) {
    if (err instanceof ApiError && AUTH_CODES.has(err.code)) {
      authFailed(err);
    } else {
      showError(`Could not load the dashboard: ${err.message}`);
    }
  }

  // ---- rendering ---------------------------------------------------------------

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined) continue;
      if (key === "class") node.className = value;
      else if (key.startsWith("data-")) node.setAttribute(key, value);
      else node[key] = value;
    }
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function statusTag(status) {
    return el("span", { class: `status status-${status}` }, status);
  }

  function when(iso) {
    if (!iso) return "";
    const date = new Date(iso);
    return Number.isNaN(date.getTime()) ? iso : date.toLocaleString();
  }

  function age(seconds) {
    if (seconds === null || seconds === undefined) return "–";
    if (seconds < 60) return `${Math.round(seconds)} s`;
    if (seconds < 3600) return `${Math.round(seconds / 60)} min`;
    if (seconds < 172800) return `${(seconds / 3600).toFixed(1)} h`;
    return `${Math.round(seconds / 86400)} d`;
  }

  function money(cents, currency) {
    return `${(cents / 100).toFixed(2)} ${String(currency).toUpperCase()}`;
  }

  function fillTable(bodyId, emptyId, rows) {
    $(bodyId).replaceChildren(...rows);
    $(emptyId).hidden = rows.length > 0;
  }

  function renderStats(stats) {
    for (const box of $("stats").querySelectorAll("[data-stat]")) {
      const key = box.getAttribute("data-stat");
      const value = stats[key];
      const dd = box.querySelector("dd");
      dd.textContent = key === "oldestUnprocessedAgeSeconds" ? age(value) : String(value);
      dd.classList.toggle("nonzero", typeof value === "number" && value > 0);
    }
  }

  function renderEvents(connection) {
    const rows = connection.edges.map(({ node }) => {
      const retry = node.status === "DEAD"
        ? el("button", { type: "button", class: "retry", "data-event-id": node.id, title: "Re-enqueue this event" }, "Retry")
        : null;
      return el("tr", { "data-event-id": node.id, "data-status": node.status },
        el("td", { class: "id", "data-label": "Event" }, node.id),
        el("td", { "data-label": "Type" }, node.type),
        el("td", { "data-label": "Status" }, statusTag(node.status)),
        el("td", { "data-label": "Tries" }, node.attempts),
        el("td", { "data-label": "Received" }, when(node.receivedAt)),
        el("td", { class: node.lastError ? "error" : "error blank", "data-label": "Last error" }, node.lastError || ""),
        el("td", { class: retry ? "action" : "action blank" }, retry));
    });
    fillTable("events", "events-empty", rows);
  }

  function renderSubscriptions(connection) {
    const rows = connection.edges.map(({ node }) =>
      el("tr", { "data-subscription-id": node.id },
        el("td", { "data-label": "#" }, node.id),
        el("td", { "data-label": "User" }, `${node.user.name} <${node.user.email}>`),
        el("td", { class: "id", "data-label": "Subscription" }, node.stripeSubscriptionId || "–"),
        el("td", { class: "id", "data-label": "Payment intent" }, node.paymentIntentId || "–"),
        el("td", { "data-label": "Since" }, when(node.updatedAt))));
    fillTable("subscriptions", "subscriptions-empty", rows);
  }

  function renderSettlements(connection) {
    const rows = connection.edges.map(({ node }) =>
      el("tr", { "data-debt-id": node.id },
        el("td", { "data-label": "#" }, node.id),
        el("td", { "data-label": "Who" }, `${node.debtor.name} → ${node.creditor.name} `,
          el("span", { class: "hint" }, `(${node.group.name})`)),
        el("td", { "data-label": "Amount" }, money(node.amountCents, node.currency)),
        el("td", { class: "id", "data-label": "Stripe id" }, node.transferId || node.paymentIntentId || ""),
        el("td", { "data-label": "Since" }, when(node.updatedAt))));
    fillTable("settlements", "settlements-empty", rows);
  }

  function addFeedEntry(change) {
    const item = el("li", {
      class: "fresh",
      "data-sequence": String(change.sequence),
      "data-entity-type": change.entityType,
      "data-entity-id": String(change.entityId),
      "data-to-status": change.toStatus,
    },
    el("span", { class: "seq" }, `#${change.sequence}`),
    `${change.entityType} ${change.entityId}: `,
    change.fromStatus ? statusTag(change.fromStatus) : "new",
    " → ",
    statusTag(change.toStatus),
    el("span", { class: "when" }, [when(change.at), change.eventId ? `event ${change.eventId}` : ""].filter(Boolean).join(" · ")));
    const feed = $("feed");
    feed.prepend(item);
    while (feed.children.length > FEED_LIMIT) feed.lastElementChild.remove();
    $("feed-empty").hidden = true;
  }

  // ---- loading -----------------------------------------------------------------

  async function refresh() {
    if (!state.token) return;
    if (state.refreshing) {
      state.refreshAgain = true;
      return;
    }
    state.refreshing = true;
    try {
      const status = $("status-filter").value || null;
      const data = await graphql(BOARD_QUERY, { status, first: PAGE });
      if (!state.token) return;
      renderStats(data.reconciliationStats);
      renderEvents(data.webhookEvents);
      renderSubscriptions(data.proSubscriptions);
      renderSettlements(data.debts);
      if ($("error").textContent.startsWith("Could not load")) showError("");
    } catch (err) {
      handleFailure(err);
    } finally {
      state.refreshing = false;
      if (state.refreshAgain) {
        state.refreshAgain = false;
        scheduleRefresh(0);
      }
    }
  }

  function scheduleRefresh(delayMs) {
    if (state.refreshTimer !== null) return;
    state.refreshTimer = setTimeout(() => {
      state.refreshTimer = null;
      refresh();
    }, delayMs);
  }

  // ---- the live feed over graphql-transport-ws ----------------------------------

  function connect() {
    if (!state.token || state.offline || state.socket) return;
    clearTimeout(state.reconnectTimer);
    state.reconnectTimer = null;
    const generation = state.generation;
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const socket = new WebSocket(`${scheme}//${location.host}/graphql`, "graphql-transport-ws");
    state.socket = socket;
    setLive("connecting…", "wait");
    const send = (message) => socket.send(JSON.stringify(message));

    socket.onopen = () => send({ type: "connection_init", payload: { Authorization: `Bearer ${state.token}` } });
    socket.onmessage = (message) => {
      if (generation !== state.generation) return;
      let msg;
      try {
        msg = JSON.parse(message.data);
      } catch (err) {
        return;
      }
      switch (msg.type) {
        case "connection_ack":
          state.backoffMs = 0;
          setLive("live", "live");
          send({ id: "feed", type: "subscribe", payload: { query: FEED_SUBSCRIPTION, variables: { resumeAfter: state.lastSequence } } });
          // Anything that moved while we were away shows in the tables at once.
          scheduleRefresh(0);
          break;
        case "next":
          if (msg.payload && msg.payload.errors && msg.payload.errors.length) {
            feedError(msg.payload.errors);
          } else if (msg.payload && msg.payload.data && msg.payload.data.reconciliationFeed) {
            onChange(msg.payload.data.reconciliationFeed);
          }
          break;
        case "error":
          feedError(Array.isArray(msg.payload) ? msg.payload : [msg.payload]);
          break;
        case "complete":
          // The server ended the feed: start over on a new socket.
          socket.close(1000, "feed completed");
          break;
        case "ping":
          send({ type: "pong" });
          break;
        default:
          break;
      }
    };
    socket.onclose = (event) => {
      if (generation !== state.generation) return;
      state.socket = null;
      if (event.code === 4401 || event.code === 4403) {
        authFailed(new ApiError("the live feed closed the connection", event.code === 4401 ? "UNAUTHENTICATED" : "FORBIDDEN"));
        return;
      }
      scheduleReconnect();
    };
  }

  function feedError(errors) {
    const first = errors[0] || {};
    const code = (first.extensions && first.extensions.code) || "ERROR";
    if (AUTH_CODES.has(code)) {
      authFailed(new ApiError(first.message || "refused", code));
    } else {
      showError(`Live feed error: ${first.message || code}`);
    }
  }

  function onChange(change) {
    const sequence = Number(change.sequence);
    // A resumed feed may replay what we already have: the sequence says what is new.
    if (state.lastSequence !== null && sequence <= state.lastSequence) return;
    state.lastSequence = sequence;
    addFeedEntry(change);
    scheduleRefresh(150);
  }

  function scheduleReconnect() {
    if (!state.token || state.offline || state.reconnectTimer !== null) return;
    state.backoffMs = Math.min(BACKOFF_MAX_MS, Math.max(BACKOFF_MIN_MS, state.backoffMs * 2));
    const delay = state.backoffMs / 2 + Math.random() * state.backoffMs / 2;
    setLive(`reconnecting in ${(delay / 1000).toFixed(1)} s`, "wait");
    state.reconnectTimer = setTimeout(() => {
      state.reconnectTimer = null;
      connect();
    }, delay);
  }

  function disconnect() {
    state.generation += 1;
    clearTimeout(state.reconnectTimer);
    state.reconnectTimer = null;
    if (state.socket) {
      state.socket.close(1000, "bye");
      state.socket = null;
    }
  }

  // ---- actions -------------------------------------------------------------------

  async function retry(button) {
    const id = button.getAttribute("data-event-id");
    button.disabled = true;
    try {
      const data = await graphql(RETRY_MUTATION, { id });
      showNotice(`Event ${id} re-enqueued: now ${data.retryWebhookEvent.status}.`);
      scheduleRefresh(0);
    } catch (err) {
      button.disabled = false;
      if (err instanceof ApiError && AUTH_CODES.has(err.code)) authFailed(err);
      else showError(`Retry of ${id} failed: ${err.message}`);
    }
  }

  async function signIn(token) {
    disconnect();
    state.token = token;
    state.lastSequence = null;
    showError("");
    setLive("checking token…", "wait");
    let head;
    try {
      head = await graphql(HEAD_QUERY);
    } catch (err) {
      handleFailure(err);
      if (!(err instanceof ApiError && AUTH_CODES.has(err.code))) setLive("offline", "off");
      return;
    }
    sessionStorage.setItem(TOKEN_KEY, token);
    const edge = head.auditLog.edges[0];
    state.lastSequence = edge ? Math.max(0, Number(edge.node.id) - HISTORY) : 0;
    $("login").hidden = true;
    $("board").hidden = false;
    $("sign-out").hidden = false;
    $("feed").replaceChildren();
    $("feed-empty").hidden = false;
    await refresh();
    if (!state.token) return;
    connect();
    clearInterval(state.pollTimer);
    state.pollTimer = setInterval(() => scheduleRefresh(0), POLL_MS);
  }

  function signOut() {
    disconnect();
    clearInterval(state.pollTimer);
    state.token = null;
    sessionStorage.removeItem(TOKEN_KEY);
    $("board").hidden = true;
    $("login").hidden = false;
    $("sign-out").hidden = true;
    showNotice("");
    setLive("signed out", "off");
  }

  function start() {
    $("login-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const token = $("token").value.trim().replace(/^Bearer\s+/i, "");
      $("token").value = "";
      if (token) signIn(token);
    });
    $("sign-out").addEventListener("click", () => {
      signOut();
      showError("");
    });
    $("status-filter").addEventListener("change", () => scheduleRefresh(0));
    $("events").addEventListener("click", (event) => {
      const button = event.target.closest("button.retry");
      if (button) retry(button);
    });
    window.addEventListener("online", () => { if (!state.socket) connect(); });
    const saved = sessionStorage.getItem(TOKEN_KEY);
    if (saved) signIn(saved);
  }

  // Hooks for the browser tests and for trying reconnection by hand in the console.
  window.trackitDashboard = {
    goOffline() {
      state.offline = true;
      disconnect();
      setLive("offline", "off");
    },
    goOnline() {
      state.offline = false;
      state.backoffMs = 0;
      connect();
    },
    dropConnection() {
      if (state.socket) state.socket.close(4000, "dropped");
    },
    lastSequence: () => state.lastSequence,
    isLive: () => $("live").textContent === "live",
  };

  start();
})();
