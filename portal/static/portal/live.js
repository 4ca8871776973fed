/* Suanwang live client: one websocket stream, its snapshot and deltas, resume after a drop.
 *
 *   var client = SuanwangLive.connect({
 *     path: "/ws/jobs/", query: {project: 3},           // the stream and its filters
 *     indicator: document.querySelector("[data-live-indicator]"),
 *     onSnapshot: function (data, message) {},          // the whole picture (on connect, or after a gap)
 *     onEvent: function (event, message) {},            // each event of each delta, in order
 *   });
 *
 * Protocol (docs/websockets.md): the server sends {"type": "snapshot", "stream", "seqs": {group: n},
 * "data"} and then {"type": "delta", "stream", "group", "seq", "events": [...]}. The client keeps the
 * last seq per group; after a drop it reconnects with ?resume=group:seq,... and the server answers
 * "resumed" and replays what was missed, or sends a fresh snapshot. A delta at or below the seq already
 * applied is skipped (a replay overlap). Reconnects back off 0.5 s → 15 s with jitter; after 4400, 4401
 * or 4403 (bad request, signed out, not allowed) the client stops and says so.
 * No dependencies; works in any browser with WebSocket.
 */
(function (global) {
  "use strict";

  var MIN_DELAY = 500;
  var MAX_DELAY = 15000;

  function buildUrl(path, query, seqs) {
    var scheme = global.location.protocol === "https:" ? "wss:" : "ws:";
    var params = [];
    Object.keys(query || {}).forEach(function (key) {
      var value = query[key];
      if (value !== undefined && value !== null && value !== "") {
        params.push(encodeURIComponent(key) + "=" + encodeURIComponent(value));
      }
    });
    var resume = Object.keys(seqs || {}).sort().map(function (group) { return group + ":" + seqs[group]; });
    if (resume.length) params.push("resume=" + encodeURIComponent(resume.join(",")));
    return scheme + "//" + global.location.host + path + (params.length ? "?" + params.join("&") : "");
  }

  // {"kind": "...", "fields": [...], "rows": [[...], ...]} → [{field: value, ...}, ...]
  function rows(event) {
    if (!event) return [];
    if (Array.isArray(event.rows) && Array.isArray(event.fields)) {
      return event.rows.map(function (row) {
        var item = {};
        event.fields.forEach(function (field, i) { item[field] = row[i]; });
        return item;
      });
    }
    if (Array.isArray(event.rows)) return event.rows;
    if (Array.isArray(event.items)) return event.items;
    return [event];
  }

  function Indicator(element) {
    this.element = element || null;
    this.labels = {};
    if (this.element) {
      var self = this;
      ["connecting", "live", "reconnecting", "offline"].forEach(function (state) {
        self.labels[state] = self.element.getAttribute("data-label-" + state) || state;
      });
    }
  }
  Indicator.prototype.set = function (state) {
    if (!this.element) return;
    this.element.setAttribute("data-state", state);
    var text = this.element.querySelector("[data-live-text]") || this.element;
    text.textContent = this.labels[state] || state;
  };

  function Client(options) {
    this.options = options;
    this.seqs = {};
    this.socket = null;
    this.attempt = 0;
    this.timer = null;
    this.closed = false;
    this.indicator = new Indicator(options.indicator);
    this.snapshots = 0;
  }

  Client.prototype.open = function (resume) {
    var self = this;
    if (self.closed) return;
    self.indicator.set(self.snapshots ? "reconnecting" : "connecting");
    var socket;
    try {
      socket = new global.WebSocket(buildUrl(self.options.path, self.options.query, resume ? self.seqs : null));
    } catch (error) {
      self.retry();
      return;
    }
    self.socket = socket;
    socket.onmessage = function (message) { self.receive(message.data); };
    socket.onclose = function (event) {
      if (self.socket !== socket) return;
      self.socket = null;
      // 4400/4401/4403: bad request, not signed in (any more) or not allowed: retrying cannot help.
      if (event.code === 4400 || event.code === 4401 || event.code === 4403) {
        self.indicator.set("offline");
        if (self.options.onRefused) self.options.onRefused(event.code);
        return;
      }
      self.retry();
    };
    socket.onerror = function () { /* onclose follows and retries */ };
  };

  Client.prototype.retry = function (immediate) {
    var self = this;
    if (self.closed || self.timer) return;
    self.indicator.set("reconnecting");
    var delay = immediate ? 0 : Math.min(MAX_DELAY, MIN_DELAY * Math.pow(2, self.attempt));
    delay = delay ? delay * (0.75 + Math.random() * 0.5) : 0;
    self.attempt += 1;
    self.timer = global.setTimeout(function () {
      self.timer = null;
      self.open(Object.keys(self.seqs).length > 0);
    }, delay);
  };

  Client.prototype.restart = function (withResume) {
    // Drop the connection and open a new one at once (without resume: a fresh snapshot).
    if (!withResume) this.seqs = {};
    var socket = this.socket;
    this.socket = null;
    if (socket) { try { socket.close(1000); } catch (e) { /* already closed */ } }
    this.retry(true);
  };

  Client.prototype.receive = function (raw) {
    var message;
    try { message = JSON.parse(raw); } catch (e) { return; }
    if (!message || typeof message !== "object") return;
    var options = this.options;
    if (message.type === "snapshot") {
      this.seqs = {};
      var seqs = message.seqs || {};
      for (var group in seqs) {
        if (Object.prototype.hasOwnProperty.call(seqs, group)) this.seqs[group] = seqs[group];
      }
      this.attempt = 0;
      this.snapshots += 1;
      this.indicator.set("live");
      if (options.onSnapshot) options.onSnapshot(message.data || {}, message);
      return;
    }
    if (message.type === "delta") {
      var known = this.seqs[message.group];
      // The server sends a group's deltas in order without gaps (a ?job= stream skips the other jobs'
      // deltas), and a fresh snapshot when it cannot: only an overlap after a resume needs care.
      if (typeof message.seq === "number" && typeof known === "number" && message.seq <= known) return;
      if (typeof message.seq === "number" && message.group) this.seqs[message.group] = message.seq;
      this.attempt = 0;
      this.indicator.set("live");
      (message.events || []).forEach(function (event) {
        if (options.onEvent) options.onEvent(event, message);
      });
      return;
    }
    if (message.type === "resumed" || message.type === "hello") {
      this.attempt = 0;
      this.indicator.set("live");
      return;
    }
    if (message.type === "error" && options.onError) options.onError(message);
  };

  Client.prototype.close = function () {
    this.closed = true;
    if (this.timer) global.clearTimeout(this.timer);
    if (this.socket) this.socket.close(1000);
    this.indicator.set("offline");
  };

  // --- small DOM and formatting helpers shared by the live pages ----------------------------
  var beijing = null;
  try {
    beijing = new Intl.DateTimeFormat("sv-SE", {
      timeZone: "Asia/Shanghai", year: "numeric", month: "2-digit", day: "2-digit",
      hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false,
    });
  } catch (e) { beijing = null; }

  // An ISO time (or epoch seconds) as Beijing time "YYYY-MM-DD HH:MM[:SS]", like the server renders it.
  function formatTime(value, withSeconds) {
    if (value === null || value === undefined || value === "") return "";
    var date = typeof value === "number" ? new Date(value * 1000) : new Date(value);
    if (isNaN(date.getTime())) return "";
    var text = beijing ? beijing.format(date) : date.toISOString().replace("T", " ").slice(0, 19);
    return withSeconds ? text.slice(0, 19) : text.slice(0, 16);
  }

  function formatNumber(value, places) {
    var number = Number(value || 0);
    return number.toLocaleString("en-US", { minimumFractionDigits: places || 0, maximumFractionDigits: places || 0 });
  }

  function readJson(id) {
    var element = document.getElementById(id);
    if (!element) return null;
    try { return JSON.parse(element.textContent); } catch (e) { return null; }
  }

  function interpolate(template, values) {
    return String(template || "").replace(/%\((\w+)\)s/g, function (all, name) {
      return values[name] === undefined ? all : values[name];
    });
  }

  function announce(text) {
    var region = document.getElementById("live-announcer");
    if (!region) return;
    region.textContent = "";
    global.setTimeout(function () { region.textContent = text; }, 30);
  }

  global.SuanwangLive = {
    connect: function (options) {
      var client = new Client(options);
      client.open(false);
      global.addEventListener("pagehide", function () { client.close(); });
      return client;
    },
    rows: rows,
    buildUrl: buildUrl,
    formatTime: formatTime,
    formatNumber: formatNumber,
    readJson: readJson,
    interpolate: interpolate,
    announce: announce,
  };
})(window);
