/* Suanwang live pages: what each page does with its stream (docs/websockets.md for the messages).
 *
 * Pages mark their live parts with data-live-page="jobs" (a job table: the job list, the dashboard's
 * recent jobs), "job" (one job's page), "board" (the federation status board), "centre" (a centre's
 * page) and "balances" (the dashboard's allocation balances). Values the script rewrites carry
 * data-f="<field>". Words come from the page (json_script), so both languages read the same.
 */
(function () {
  "use strict";

  var Live = window.SuanwangLive;
  if (!Live) return;

  function $(root, selector) { return root.querySelector(selector); }
  function $$(root, selector) { return Array.prototype.slice.call(root.querySelectorAll(selector)); }
  function text(node, value) { if (node) node.textContent = value; }
  function flash(node) {
    if (!node) return;
    node.classList.remove("live-flash");
    void node.offsetWidth;  // restart the animation
    node.classList.add("live-flash");
  }
  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (key) {
      if (key === "text") node.textContent = attrs[key];
      else if (key === "className") node.className = attrs[key];
      else node.setAttribute(key, attrs[key]);
    });
    (children || []).forEach(function (child) {
      if (child) node.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
    });
    return node;
  }
  function indicator() { return document.querySelector("[data-live-indicator]"); }

  var states = Live.readJson("job-states") || {};
  var words = Live.readJson("live-words") || {};
  var siteStates = Live.readJson("site-states") || {};

  // --- jobs: rows of the stream ------------------------------------------------------------
  var classes = {};    // resource class code → {scale, unit}
  var projects = {};   // project id → title
  var jobStore = {};   // job id → the latest of every field heard (rows may be partial: id, state, cause, at)

  function merge(row) {
    var record = jobStore[row.id] || (jobStore[row.id] = {});
    Object.keys(row).forEach(function (key) { record[key] = row[key]; });
    return record;
  }
  var timers = [];

  function stateLabel(state) { return (states[state] && states[state].label) || state; }

  function setBadge(node, state) {
    if (!node) return;
    var badge = (states[state] && states[state].badge) || "";
    node.className = "badge" + (node.classList.contains("fd-badge-lg") ? " fd-badge-lg" : "") + (badge ? " " + badge : "");
    node.textContent = stateLabel(state);
  }

  function hoursText(units, classCode) {
    var rc = classes[classCode];
    if (!rc) return null;
    var hours = Number(units || 0) / Number(rc.scale || 3600);
    var amount = Live.formatNumber(hours, 2);
    var template = String(rc.unit || "").indexOf("card") === 0 ? words.card_hours : words.core_hours;
    return Live.interpolate(template, { amount: amount });
  }

  function costSoFar(job) {
    if (job.state !== "running" || !job.started_at || !job.rate) return null;
    var seconds = Math.max(0, (Date.now() - new Date(job.started_at).getTime()) / 1000);
    var units = Math.min(Number(job.rate) * seconds, Number(job.held || Infinity));
    return hoursText(units, job.resource_class);
  }

  // A centre's name as the page already shows it (a link to its page), or null.
  function siteName(code) {
    var link = document.querySelector('a[href="/centres/' + code + '/"]');
    return link ? link.textContent : null;
  }

  function siteCell(cell, job, long) {
    if (!cell || !job.site) return;
    var name = siteName(job.site);
    cell.textContent = "";
    cell.appendChild(el("a", { href: "/centres/" + encodeURIComponent(job.site) + "/", text: name || job.site }));
    if (name) {
      cell.appendChild(document.createTextNode(" "));
      cell.appendChild(el("span", { className: "code", text: job.site }));
    }
    if (job.partition && !long) cell.appendChild(el("div", { className: "muted small mono", text: job.partition }));
    flash(cell);
  }

  function timesText(job) {
    if (job.ended_at) return Live.interpolate(words.ended, { time: Live.formatTime(job.ended_at, true).slice(11) });
    if (job.started_at) return Live.interpolate(words.started, { time: Live.formatTime(job.started_at, true).slice(11) });
    return "";
  }

  // Apply one job row to a job table row or to the job page (same data-f hooks).
  function applyJob(root, job, long) {
    var before = root.getAttribute("data-state");
    root.__job = job;
    root.setAttribute("data-state", job.state);
    var changed = before !== job.state;
    $$(root, '[data-f="state"]').forEach(function (badge) {
      setBadge(badge, job.state);
      if (changed) flash(badge);
    });
    var siteBefore = root.getAttribute("data-site-code") || "";
    if (job.site && job.site !== siteBefore) {
      $$(root, '[data-f="site"]').forEach(function (cell) { siteCell(cell, job, long); });
      root.setAttribute("data-site-code", job.site);
    }
    var times = $(root, '[data-f="times"]');
    if (times && ("started_at" in job || "ended_at" in job)) text(times, timesText(job));
    var charged = $(root, '[data-f="charged"]');
    var terminal = states[job.state] && states[job.state].terminal;
    if (charged && "charged" in job) {
      var hours = (terminal || Number(job.charged)) ? hoursText(job.charged, job.resource_class) : "—";
      if (hours && charged.textContent !== hours) { charged.textContent = hours; if (hours !== "—") flash(charged); }
    }
    return changed;
  }

  function tickCosts() {
    $$(document, "[data-job]").forEach(function (row) {
      var job = row.__job;
      var slot = $(row, '[data-f="so_far"]');
      if (!slot || !job) return;
      var cost = costSoFar(job);
      slot.textContent = cost ? Live.interpolate(words.so_far, { amount: cost }) : "";
    });
  }

  function rememberSnapshot(data) {
    if (data.classes) classes = data.classes;
    (data.projects || []).forEach(function (p) { projects[p.id] = p.title; });
  }

  // A row for a job the page did not render (a new submission): the same cells as the server's rows.
  function buildRow(job, table) {
    var columns = $$(table, "thead th").length;
    var tr = el("tr", { "data-job": String(job.id), "data-state": job.state, "data-site-code": "" });
    var first = el("td", {}, [
      el("a", { className: "fd-job-link", href: "/jobs/" + job.id + "/", text: "#" + job.id }),
      el("div", { className: "small fd-ellipsis", title: job.name || "", text: job.name || "—" }),
    ]);
    tr.appendChild(first);
    if (table.hasAttribute("data-with-project")) {
      tr.appendChild(el("td", {}, [el("div", { className: "fd-ellipsis", text: projects[job.project] || "" })]));
    }
    tr.appendChild(el("td", {}, [el("span", { className: "badge", "data-f": "state" })]));
    tr.appendChild(el("td", { "data-f": "site" }, [el("span", { className: "muted", text: "—" })]));
    if (table.hasAttribute("data-with-resources")) {
      tr.appendChild(el("td", { className: "nowrap small muted", text: job.resource_class || "" }));
    }
    tr.appendChild(el("td", { className: "nowrap" }, [
      Live.formatTime(job.submitted_at), el("div", { className: "muted small", "data-f": "times" }),
    ]));
    tr.appendChild(el("td", { className: "num nowrap" }, [
      el("span", { "data-f": "charged", text: "—" }), el("span", { className: "live-so-far", "data-f": "so_far" }),
    ]));
    while (tr.children.length < columns) tr.appendChild(el("td"));
    return tr;
  }

  function jobTables() {
    $$(document, '[data-live-page="jobs"]').forEach(function (section) {
      var table = $(section, "table");
      var insert = section.hasAttribute("data-live-insert");
      var limit = Number(section.getAttribute("data-live-limit") || 0);
      var banner = $(section, ".live-new-banner");
      var empty = $(section, "[data-live-empty]");
      var known = {};
      $$(section, "tr[data-job]").forEach(function (row) { known[row.getAttribute("data-job")] = row; });
      var query = {};
      if (section.getAttribute("data-live-project")) query.project = section.getAttribute("data-live-project");

      function upsert(row_, fromSnapshot) {
        var job = merge(row_);
        var row = known[String(job.id)];
        if (!row) {
          if (fromSnapshot || !insert || !table || job.state === undefined) {
            if (!fromSnapshot && banner && !insert) banner.hidden = false;
            return;
          }
          var body = $(table, "tbody");
          row = buildRow(job, table);
          body.insertBefore(row, body.firstChild);
          known[String(job.id)] = row;
          if (limit) {
            var rows = $$(body, "tr[data-job]");
            rows.slice(limit).forEach(function (extra) { delete known[extra.getAttribute("data-job")]; extra.remove(); });
          }
          if (table.closest("[hidden]")) table.closest("[hidden]").hidden = false;
          var count = $(section, "h2 .count");
          if (count) count.textContent = String(Number(count.textContent.replace(/\D/g, "") || 0) + 1);
          if (empty) empty.hidden = true;
          applyJob(row, job, false);
          flash(row);
          return;
        }
        if (applyJob(row, job, false) && !fromSnapshot) {
          Live.announce(Live.interpolate(words.job_now, { id: job.id, state: stateLabel(job.state) }));
        }
      }

      Live.connect({
        path: "/ws/jobs/", query: query, indicator: section.querySelector("[data-live-indicator]") || indicator(),
        onSnapshot: function (data) {
          rememberSnapshot(data);
          Live.rows(data.jobs).forEach(function (job) { upsert(job, true); });
          tickCosts();
        },
        onEvent: function (event) {
          if (event.kind === "jobs") Live.rows(event).forEach(function (job) { upsert(job, false); });
          else if (event.kind === "allocation") balances(Live.rows(event));
          tickCosts();
        },
      });
    });
  }

  // --- one job's page ----------------------------------------------------------------------
  function jobPage() {
    var root = document.querySelector('[data-live-page="job"]');
    if (!root) return;
    var id = root.getAttribute("data-job");
    var timeline = $(root, '[data-f="timeline"]');
    var routedSite = root.getAttribute("data-site-code") || "";

    function appendEvent(from, job) {
      if (!timeline || !job.at) return;
      var exists = $$(timeline, "li").some(function (li) {
        return li.getAttribute("data-event-state") === job.state &&
          Math.abs(new Date(li.getAttribute("data-event-at")).getTime() - new Date(job.at).getTime()) < 1000;
      });
      if (exists) return;
      var badge = el("span", { className: "badge" });
      setBadge(badge, job.state);
      var li = el("li", { className: "fd-event-" + job.state, "data-event-state": job.state, "data-event-at": job.at }, [
        el("time", { datetime: job.at, text: Live.formatTime(job.at, true) }),
        el("div", {}, [from ? el("span", { className: "muted small", text: stateLabel(from) + " →" }) : null, from ? " " : null, badge]),
        el("div", { className: "muted small mono", text: job.cause || "" }),
      ]);
      timeline.appendChild(li);
      timeline.hidden = false;
      var none = $(root, '[data-f="no_events"]');
      if (none) none.hidden = true;
      flash(li);
    }

    function apply(row, fromSnapshot) {
      if (String(row.id) !== id) return;
      var job = merge(row);
      var before = root.getAttribute("data-state");
      var siteBefore = root.getAttribute("data-site-code") || "";
      applyJob(root, job, true);
      if (job.site && job.site !== siteBefore) {
        text($(root, '[data-f="partition"]'), job.partition || "—");
      }
      if (job.site && routedSite && job.site !== routedSite) {
        var notice = $(root, '[data-f="rerouted"]');
        if (notice) notice.hidden = false;
      }
      if ("started_at" in job) text($(root, '[data-f="started_at"]'), job.started_at ? Live.formatTime(job.started_at, true) : "—");
      if ("ended_at" in job) text($(root, '[data-f="ended_at"]'), job.ended_at ? Live.formatTime(job.ended_at, true) : "—");
      var reason = $(root, '[data-f="reason"]');
      if (reason && "reason" in job) {
        reason.hidden = !job.reason;
        reason.textContent = job.reason || "";
        reason.className = "alert " + (job.state === "cancelled" ? "alert-warn" : "alert-error");
      }
      var terminal = states[job.state] && states[job.state].terminal;
      var cancel = $(root, '[data-f="cancel"]');
      if (cancel && terminal) cancel.hidden = true;
      if (!fromSnapshot || before !== job.state) appendEvent(before !== job.state ? before : "", job);
      if (before !== job.state && !fromSnapshot) {
        Live.announce(Live.interpolate(words.job_now, { id: job.id, state: stateLabel(job.state) }));
      }
    }

    Live.connect({
      path: "/ws/jobs/", query: { job: id }, indicator: indicator(),
      onSnapshot: function (data) {
        rememberSnapshot(data);
        Live.rows(data.jobs).forEach(function (job) { apply(job, true); });
        tickCosts();
      },
      onEvent: function (event) {
        if (event.kind === "jobs") Live.rows(event).forEach(function (job) { apply(job, false); });
        tickCosts();
      },
    });
  }

  // --- allocation balances (dashboard) -----------------------------------------------------
  function balances(rows) {
    rows.forEach(function (b) {
      var row = document.querySelector('[data-balance="' + b.allocation + ":" + b["class"] + '"]');
      if (!row) return;
      var rc = classes[b["class"]];
      var scale = rc ? Number(rc.scale || 1) : Number(row.getAttribute("data-scale") || 1);
      ["held", "charged", "available"].forEach(function (field) {
        var node = $(row, '[data-f="' + field + '"]');
        if (!node) return;
        var value = Live.formatNumber(Number(b[field] || 0) / scale, 0);
        if (node.textContent !== value) { node.textContent = value; flash(node); }
      });
      var awarded = Number(b.awarded || 0);
      var pct = function (v) { return awarded ? Math.max(0, Math.min(100, Number(v || 0) * 100 / awarded)) : 0; };
      var charged = $(row, ".al-bar-charged");
      var held = $(row, ".al-bar-held");
      if (charged) charged.style.width = pct(b.charged).toFixed(2) + "%";
      if (held) held.style.width = pct(b.held).toFixed(2) + "%";
    });
  }

  // --- federation status board -------------------------------------------------------------
  var ICONS = { online: "●", degraded: "▲", draining: "◐", offline: "✕" };

  function setSiteState(card, site, announce) {
    var before = card.getAttribute("data-state");
    card.setAttribute("data-state", site.state);
    card.className = card.className.replace(/\bsb-(online|degraded|draining|offline)\b/g, "").trim() + " sb-" + site.state;
    var badge = $(card, '[data-f="state"]');
    if (badge) {
      var meta = siteStates[site.state] || {};
      badge.className = "badge sb-badge" + (meta.badge ? " " + meta.badge : "");
      text($(badge, '[data-f="icon"]'), ICONS[site.state] || "");
      text($(badge, '[data-f="state_label"]'), meta.label || site.state);
    }
    var reason = $(card, '[data-f="reason"]');
    if (reason) { reason.hidden = !site.reason; reason.textContent = site.reason || ""; }
    if (before !== site.state) {
      flash(card);
      if (announce) {
        var template = (document.getElementById("sb-i18n") || { getAttribute: function () { return ""; } })
          .getAttribute("data-now-state");
        Live.announce(Live.interpolate(template, { name: site.name || site.code, state: (siteStates[site.state] || {}).label || site.state }));
      }
    }
  }

  function setBar(row, used, total) {
    if (!row) return;
    var pct = total ? Math.min(100, used * 100 / total) : 0;
    var bar = $(row, ".sb-bar");
    if (bar) {
      bar.classList.toggle("sb-hot", pct >= 90);
      bar.classList.toggle("sb-warm", pct >= 70 && pct < 90);
      var fill = $(bar, "span");
      if (fill) fill.style.width = pct.toFixed(1) + "%";
    }
    var usedNode = $(row, '[data-f="used"]');
    var value = Live.formatNumber(used, 0);
    if (usedNode && usedNode.textContent !== value) usedNode.textContent = value;
  }

  function board() {
    var summary = document.querySelector('[data-live-page="board"]');
    if (!summary) return;
    var sites = {};      // code → {code, name, state, reason}
    var capacity = {};   // "site/partition" → capacity row

    function card(code) { return document.querySelector('.sb-card[data-site="' + code + '"]'); }

    function redrawSite(code) {
      var node = card(code);
      if (!node) return;
      var families = {};
      var cores = { used: 0, total: 0 };
      var running = 0, waiting = 0, down = 0, seen = false;
      Object.keys(capacity).forEach(function (key) {
        var c = capacity[key];
        if (c.site !== code) return;
        seen = true;
        if (c.family) {
          var f = families[c.family] || (families[c.family] = { used: 0, total: 0 });
          f.total += Number(c.cards_total || 0);
          f.used += Math.max(0, Number(c.cards_total || 0) - Number(c.cards_free || 0));
        }
        cores.total += Number(c.cores_total || 0);
        cores.used += Math.max(0, Number(c.cores_total || 0) - Number(c.cores_free || 0));
        running += Number(c.running || 0);
        waiting += Number(c.queued || 0);
        down += Math.max(0, Number(c.nodes_total || 0) - Number(c.nodes_up || 0));
      });
      if (!seen) return;
      Object.keys(families).forEach(function (family) {
        setBar($(node, '.sb-row[data-family="' + family + '"]'), families[family].used, families[family].total);
      });
      setBar($(node, '.sb-row[data-family="cores"]'), cores.used, cores.total);
      text($(node, '[data-f="running"]'), Live.formatNumber(running, 0));
      text($(node, '[data-f="waiting"]'), Live.formatNumber(waiting, 0));
      text($(node, '[data-f="nodes_down"]'), Live.formatNumber(down, 0));
      var downBox = $(node, '[data-f="down_box"]');
      if (downBox) downBox.hidden = !down;
      node.__usage = { families: families, cores: cores, running: running, waiting: waiting };
    }

    function redrawTotals() {
      var t = { routable: 0, draining: 0, offline: 0, cards_used: 0, cards_total: 0, cores_used: 0, cores_total: 0, running: 0, waiting: 0 };
      $$(document, ".sb-card").forEach(function (node) {
        var state = node.getAttribute("data-state");
        if (state === "online" || state === "degraded") t.routable += 1;
        if (state === "draining") t.draining += 1;
        if (state === "offline") t.offline += 1;
        var u = node.__usage;
        if (!u) {  // not reported yet: what the server rendered
          $$(node, ".sb-row").forEach(function (row) {
            var used = Number(($(row, '[data-f="used"]') || {}).textContent.replace(/,/g, "") || 0);
            var total = Number(row.getAttribute("data-total") || 0);
            if (row.getAttribute("data-family") === "cores") { t.cores_used += used; t.cores_total += total; }
            else { t.cards_used += used; t.cards_total += total; }
          });
          t.running += Number(($(node, '[data-f="running"]') || {}).textContent.replace(/,/g, "") || 0);
          t.waiting += Number(($(node, '[data-f="waiting"]') || {}).textContent.replace(/,/g, "") || 0);
          return;
        }
        Object.keys(u.families).forEach(function (f) { t.cards_used += u.families[f].used; t.cards_total += u.families[f].total; });
        t.cores_used += u.cores.used; t.cores_total += u.cores.total;
        t.running += u.running; t.waiting += u.waiting;
      });
      var pct = function (a, b) { return b ? Math.round(Math.min(100, a * 1000 / b)) / 10 : 0; };
      var values = {
        routable: t.routable, draining: t.draining, offline: t.offline,
        cards_used: Live.formatNumber(t.cards_used, 0), cards_pct: pct(t.cards_used, t.cards_total).toFixed(1),
        cores_used: Live.formatNumber(t.cores_used, 0), cores_pct: pct(t.cores_used, t.cores_total).toFixed(1),
        running: Live.formatNumber(t.running, 0), waiting: Live.formatNumber(t.waiting, 0),
      };
      Object.keys(values).forEach(function (key) {
        $$(summary, '[data-t="' + key + '"]').forEach(function (node) { node.textContent = values[key]; });
      });
      ["draining", "offline"].forEach(function (key) {
        var box = $(summary, '[data-t-box="' + key + '"]');
        if (box) box.classList.toggle("sb-zero", !t[key]);
      });
      var cardsBar = $(summary, '[data-bar="cards"] span');
      var coresBar = $(summary, '[data-bar="cores"] span');
      if (cardsBar) cardsBar.style.width = values.cards_pct + "%";
      if (coresBar) coresBar.style.width = values.cores_pct + "%";
    }

    function applySites(rows, announce) {
      rows.forEach(function (site) {
        sites[site.code] = site;
        var node = card(site.code);
        if (node) setSiteState(node, site, announce);
      });
    }

    function applyCapacity(rows) {
      var touched = {};
      rows.forEach(function (c) { capacity[c.site + "/" + c.partition] = c; touched[c.site] = true; });
      Object.keys(touched).forEach(redrawSite);
    }

    Live.connect({
      path: "/ws/sites/", indicator: indicator(),
      onSnapshot: function (data) {
        capacity = {};
        applySites(Live.rows(data.sites), false);
        applyCapacity(Live.rows(data.capacity));
        redrawTotals();
      },
      onEvent: function (event) {
        if (event.kind === "site") applySites(Live.rows(event), true);
        else if (event.kind === "capacity") applyCapacity(Live.rows(event));
        redrawTotals();
      },
    });
  }

  // --- a centre's page: its state, and (operators) its jobs moving ---------------------------
  function centrePage() {
    var root = document.querySelector('[data-live-page="centre"]');
    if (!root) return;
    var code = root.getAttribute("data-site");
    var list = $(root, "[data-live-site-jobs]");
    var pending = null;
    var lastFetch = 0;

    function refreshJobs() {
      if (!list) return;
      var wait = Math.max(0, 1000 - (Date.now() - lastFetch));
      if (pending) return;
      pending = window.setTimeout(function () {
        pending = null;
        lastFetch = Date.now();
        fetch(list.getAttribute("data-live-site-jobs"), { credentials: "same-origin", headers: { "X-Requested-With": "fetch" } })
          .then(function (response) { return response.ok ? response.text() : null; })
          .then(function (html) { if (html !== null) replaceJobs(html); })
          .catch(function () { /* the next change retries */ });
      }, wait);
    }

    function replaceJobs(html) {
      var holder = document.createElement("div");
      holder.innerHTML = html;
      var fresh = {};
      $$(holder, "tr[data-job]").forEach(function (row) { fresh[row.getAttribute("data-job")] = row; });
      var body = $(list, "tbody");
      var leftLabel = list.getAttribute("data-left-label") || "";
      if (!body) { list.innerHTML = html; return; }
      // Jobs that left the centre (finished, cancelled or routed elsewhere) fade out before they go.
      $$(body, "tr[data-job]").forEach(function (row) {
        var id = row.getAttribute("data-job");
        if (fresh[id] || row.classList.contains("live-leaving")) return;
        row.classList.add("live-leaving");
        row.setAttribute("data-left-label", leftLabel);
        window.setTimeout(function () { row.remove(); }, 4000);
      });
      Object.keys(fresh).forEach(function (id) {
        var current = $(body, 'tr[data-job="' + id + '"]');
        if (current && !current.classList.contains("live-leaving")) {
          if (current.getAttribute("data-state") !== fresh[id].getAttribute("data-state")) {
            current.replaceWith(fresh[id]);
            flash(fresh[id]);
          }
        } else if (!current) {
          body.insertBefore(fresh[id], body.firstChild);
          flash(fresh[id]);
        }
      });
      var count = $(holder, "[data-count]");
      var counter = $(list, "[data-count]");
      if (count && counter) counter.textContent = count.textContent;
      var empty = $(list, "[data-live-empty]");
      if (empty) empty.hidden = Object.keys(fresh).length > 0;
      var wrap = $(list, ".table-wrap");
      if (wrap && Object.keys(fresh).length) wrap.hidden = false;
    }

    Live.connect({
      path: "/ws/sites/", indicator: indicator(),
      onSnapshot: function (data) {
        Live.rows(data.sites).forEach(function (site) { if (site.code === code) centreState(root, site, false); });
        refreshJobs();
      },
      onEvent: function (event) {
        var mine = Live.rows(event).some(function (row) { return (row.code || row.site) === code; });
        if (!mine) return;
        if (event.kind === "site") {
          Live.rows(event).forEach(function (site) { if (site.code === code) centreState(root, site, true); });
        }
        refreshJobs();
      },
    });
  }

  function centreState(root, site, announce) {
    var before = root.getAttribute("data-state");
    root.setAttribute("data-state", site.state);
    var meta = siteStates[site.state] || {};
    $$(root, '[data-f="site_state"]').forEach(function (badge) {
      badge.className = "badge fd-badge-lg" + (meta.badge ? " " + meta.badge : "");
      badge.textContent = meta.label || site.state;
    });
    $$(root, "[data-state-note]").forEach(function (note) {
      note.hidden = note.getAttribute("data-state-note") !== site.state;
      var reason = $(note, "[data-f='reason']");
      if (reason) { reason.textContent = site.reason || ""; reason.hidden = !site.reason; }
    });
    if (before !== site.state) {
      $$(root, '[data-f="site_state"]').forEach(flash);
      // The operator's buttons: the moves allowed from the new state (the server checks them again).
      var buttons = $(root, ".fd-operate-buttons");
      if (buttons && meta.moves) {
        buttons.textContent = "";
        meta.moves.forEach(function (move) {
          var kind = move.state === "offline" ? " btn-danger" : move.state === "online" ? " btn-primary" : "";
          buttons.appendChild(el("button", { type: "submit", name: "state", value: move.state, className: "btn" + kind, text: move.label }));
        });
      } else {
        var stale = $(root, "[data-f='moves-stale']");
        if (stale) stale.hidden = false;
      }
      if (announce) Live.announce((meta.label || site.state));
    }
  }

  document.addEventListener("DOMContentLoaded", function () {
    jobTables();
    jobPage();
    board();
    centrePage();
    timers.push(window.setInterval(tickCosts, 1000));
  });
})();
