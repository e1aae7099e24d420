// funnelgate dashboard. Plain JavaScript, no dependencies, nothing loaded from elsewhere.
// Reads the coordinator's HTTP JSON, listens to its server-sent events, and, for an operator
// (GET /v1/whoami with the token kept in sessionStorage), offers overrides and phase changes.
(function () {
  "use strict";

  var TOKEN_KEY = "funnelgate.token";
  var who = { authenticated: false, identity: null, role: null };
  var source = null;
  var current = { funnel: null, view: null, history: [] };

  // ---- small DOM helpers (text only: no HTML from data is ever parsed) ----
  function el(tag, attrs) {
    var node = document.createElement(tag);
    if (attrs) {
      Object.keys(attrs).forEach(function (k) {
        var v = attrs[k];
        if (v === null || v === undefined || v === false) return;
        if (k === "text") node.textContent = String(v);
        else if (k === "class") node.className = v;
        else if (k === "style") node.style.cssText = v; // CSSOM: allowed under the page's CSP
        else if (k.slice(0, 2) === "on") node.addEventListener(k.slice(2), v);
        else node.setAttribute(k, v === true ? "" : String(v));
      });
    }
    for (var i = 2; i < arguments.length; i++) {
      var c = arguments[i];
      if (c === null || c === undefined) continue;
      if (Array.isArray(c)) c.forEach(function (x) { if (x) node.appendChild(x); });
      else node.appendChild(typeof c === "string" ? document.createTextNode(c) : c);
    }
    return node;
  }
  function svgEl(tag, attrs) {
    var node = document.createElementNS("http://www.w3.org/2000/svg", tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, String(attrs[k])); });
    return node;
  }
  function badge(prefix, value, label) {
    var v = value || "UNKNOWN";
    return el("span", { class: "badge " + prefix + "-" + v, text: label || v.replace(/_/g, " ") });
  }
  function when(ts) {
    if (!ts) return "—";
    var d = new Date(ts);
    if (isNaN(d.getTime())) return String(ts);
    return d.toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z").replace(/:\d\dZ$/, function (m) { return m; });
  }
  function pct(n) { return (typeof n === "number" ? n : 0) + "%"; }
  function announce(text) { var live = document.getElementById("live"); live.textContent = text; }
  function token() { try { return sessionStorage.getItem(TOKEN_KEY) || ""; } catch (e) { return ""; } }

  function api(method, path, body) {
    var headers = { "Accept": "application/json" };
    var t = token();
    if (t) headers["Authorization"] = "Bearer " + t;
    var init = { method: method, headers: headers, credentials: "same-origin" };
    if (body !== undefined) { headers["Content-Type"] = "application/json"; init.body = JSON.stringify(body); }
    return fetch(path, init).then(function (r) {
      return r.text().then(function (text) {
        var data = null;
        try { data = text ? JSON.parse(text) : null; } catch (e) { data = { message: text }; }
        if (!r.ok) {
          // Errors are {"error": {"code", "message"}}.
          var msg = (data && data.error && data.error.message) || (data && data.message) || (r.status + " " + r.statusText);
          throw new Error(msg);
        }
        return data;
      });
    });
  }

  // ---- who is signed in ----
  function refreshWho() {
    return api("GET", "/v1/whoami").then(function (w) {
      who = w || who;
    }, function () {
      who = { authenticated: false, identity: null, role: null };
    }).then(function () {
      var out = document.getElementById("whoami");
      if (who.authenticated) out.textContent = "Signed in as " + who.identity + " (" + who.role + ")";
      else if (token()) out.textContent = "Unknown token: read only";
      else out.textContent = "Not signed in: read only";
      document.body.setAttribute("data-role", who.role || "none");
      renderControls();
    });
  }

  function setupAuth() {
    var form = document.getElementById("auth");
    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      var input = document.getElementById("token");
      try { sessionStorage.setItem(TOKEN_KEY, input.value.trim()); } catch (e) { /* private mode */ }
      input.value = "";
      refreshWho();
    });
    document.getElementById("token-forget").addEventListener("click", function () {
      try { sessionStorage.removeItem(TOKEN_KEY); } catch (e) { /* ignore */ }
      refreshWho();
    });
  }

  // ---- live feed ----
  function connect(path, onDecision) {
    if (source) source.close();
    var conn = document.getElementById("conn");
    source = new EventSource(path);
    source.addEventListener("open", function () { conn.textContent = "connected"; });
    source.addEventListener("error", function () { conn.textContent = "reconnecting"; });
    source.addEventListener("decision", function (ev) {
      var d;
      try { d = JSON.parse(ev.data); } catch (e) { return; }
      onDecision(d);
    });
  }

  // ---- the funnel list ----
  function listRow(f) {
    return el("tr", { "data-funnel": f.funnel },
      el("th", { scope: "row" }, el("a", { href: "/dashboard/funnels/" + encodeURIComponent(f.funnel), text: f.funnel })),
      el("td", { class: "cell-state" }, badge("s", f.state)),
      el("td", { class: "cell-share", text: pct(f.allowed_rollout_percent) }),
      el("td", { class: "cell-blocking", text: f.blocking_stage || "—" }),
      el("td", { class: "cell-since" }, el("time", { datetime: f.since, text: when(f.since) })));
  }

  function showList() {
    document.title = "Funnels · funnelgate";
    var main = document.getElementById("main");
    api("GET", "/v1/funnels").then(function (data) {
      var tbody = el("tbody", { id: "funnel-rows" }, (data.funnels || []).map(listRow));
      main.replaceChildren(
        el("h1", { text: "Funnels" }),
        el("div", { class: "table-wrap" },
          el("table", { id: "funnels" },
            el("caption", { class: "visually-hidden", text: "Every funnel this coordinator gates" }),
            el("thead", null, el("tr", null,
              el("th", { scope: "col", text: "Funnel" }),
              el("th", { scope: "col", text: "State" }),
              el("th", { scope: "col", text: "Allowed share" }),
              el("th", { scope: "col", text: "Blocking stage" }),
              el("th", { scope: "col", text: "Since" }))),
            tbody)));
      document.body.setAttribute("data-ready", "list");
      connect("/v1/events", function (d) {
        var row = tbody.querySelector('tr[data-funnel="' + CSS.escape(d.funnel) + '"]');
        var fresh = listRow({ funnel: d.funnel, state: d.state, allowed_rollout_percent: d.allowed_rollout_percent, blocking_stage: d.blocking_stage, since: d.since });
        if (row) row.replaceWith(fresh); else tbody.appendChild(fresh);
        announce(d.funnel + " is " + d.state + " at " + pct(d.allowed_rollout_percent));
      });
    }, function (e) {
      main.replaceChildren(el("h1", { text: "Funnels" }), el("p", { class: "error", role: "alert", text: "Cannot load funnels: " + e.message }));
    });
  }

  // ---- one funnel ----
  function thresholdsText(t) {
    if (!t) return "—";
    var parts = [];
    if (t.warn_above !== undefined) parts.push("warn > " + t.warn_above);
    if (t.fail_above !== undefined) parts.push("fail > " + t.fail_above);
    if (t.warn_below !== undefined) parts.push("warn < " + t.warn_below);
    if (t.fail_below !== undefined) parts.push("fail < " + t.fail_below);
    if (t.expect !== undefined) parts.push("expect " + t.expect);
    return parts.length ? parts.join(", ") : "—";
  }
  function policyProbe(policy, stage, id) {
    var s = (policy && policy.stages || []).filter(function (x) { return x.name === stage; })[0];
    return s ? (s.probes || []).filter(function (p) { return p.id === id; })[0] : null;
  }

  function renderFunnelGraphic(d) {
    var stages = (d.stages || []).slice();
    var n = stages.length;
    // Bottom stage (checked first) drawn at the bottom, narrowest; the top of the funnel on top.
    var items = stages.slice().reverse().map(function (s, i) {
      var cls = s.readiness === "READY" ? "ready" : s.readiness === "BLOCKED" ? "blocked" : "broken";
      var width = n > 1 ? 100 - (i * 45 / (n - 1)) : 100;
      return el("li", { class: cls, style: "width:" + width.toFixed(0) + "%", "data-stage": s.stage, "data-readiness": s.readiness },
        el("span", { class: "name", text: s.stage }),
        el("span", null, badge("h", s.health), " ", badge("r", s.readiness)),
        el("span", { class: "why", text: s.summary || "" }));
    });
    return el("section", { "aria-labelledby": "h-stages" },
      el("h2", { id: "h-stages", text: "Stages (bottom stage at the bottom)" }),
      el("ol", { class: "funnel", id: "funnel-graphic", reversed: true }, items));
  }

  function renderProbes(d, policy) {
    var rows = [];
    (d.stages || []).forEach(function (s) {
      (s.probes || []).forEach(function (p) {
        var spec = policyProbe(policy, s.stage, p.id);
        var value = p.value === undefined || p.value === null ? "—" : (p.value + (p.unit ? " " + p.unit : ""));
        rows.push(el("tr", null,
          el("td", { text: s.stage }),
          el("th", { scope: "row", text: p.id }),
          el("td", null, badge("p", p.status)),
          el("td", { text: value }),
          el("td", { text: thresholdsText(spec && spec.thresholds) }),
          el("td", { class: "hide-narrow", text: p.message || "" })));
      });
    });
    return el("section", { "aria-labelledby": "h-probes" },
      el("h2", { id: "h-probes", text: "Probes" }),
      rows.length ? el("div", { class: "table-wrap" }, el("table", { id: "probes" },
        el("thead", null, el("tr", null,
          el("th", { scope: "col", text: "Stage" }), el("th", { scope: "col", text: "Probe" }),
          el("th", { scope: "col", text: "Status" }), el("th", { scope: "col", text: "Value" }),
          el("th", { scope: "col", text: "Thresholds" }), el("th", { scope: "col", class: "hide-narrow", text: "Message" }))),
        el("tbody", null, rows))) : el("p", { class: "muted", text: "No probe results yet." }));
  }

  function renderDecision(view) {
    var d = view.decision;
    var ov = d.override;
    var summary = el("dl", { class: "summary" },
      el("div", null, el("dt", { text: "State" }), el("dd", null, el("span", { id: "gate-state", "data-state": d.state }, badge("s", d.state)))),
      el("div", null, el("dt", { text: "Allowed share" }), el("dd", { id: "gate-share", text: pct(d.allowed_rollout_percent) })),
      el("div", null, el("dt", { text: "Blocking stage" }), el("dd", { id: "gate-blocking", text: d.blocking_stage || "none" })),
      el("div", null, el("dt", { text: "Phase" }), el("dd", { id: "gate-phase", text: d.phase })),
      el("div", null, el("dt", { text: "Since" }), el("dd", null, el("time", { datetime: d.since, text: when(d.since) }))),
      el("div", null, el("dt", { text: "Override" }), el("dd", { id: "gate-override", text: ov ? (ov.state + " by " + ov.actor + " until " + when(ov.until) + ": " + ov.reason) : "none" })));
    var reasons = el("section", { "aria-labelledby": "h-reasons" },
      el("h2", { id: "h-reasons", text: "Why" }),
      (d.reasons || []).length ? el("ul", { id: "reasons" }, d.reasons.map(function (r) { return el("li", { text: r.message }); }))
        : el("p", { class: "muted", text: "No reasons: every stage passes." }),
      d.advice ? el("p", { text: "Advice: " + d.advice }) : null);
    var fix = el("section", { "aria-labelledby": "h-fix" },
      el("h2", { id: "h-fix", text: "Fix first" }),
      (d.remediation || []).length ? el("ol", { id: "fix-first" }, d.remediation.map(function (r) {
        return el("li", null, el("strong", { text: r.stage + " · " + r.probe + ": " }), r.message);
      })) : el("p", { class: "muted", text: "Nothing to fix." }));
    return el("div", { id: "decision" }, summary, renderFunnelGraphic(d), reasons, fix, renderProbes(d, view.policy), renderSinks(view.notifications));
  }

  function renderSinks(n) {
    if (!n || !n.sinks || !n.sinks.length) return null;
    return el("section", { "aria-labelledby": "h-sinks", class: "sinks" },
      el("h2", { id: "h-sinks", text: "Notifications" }),
      el("ul", { id: "sinks" }, n.sinks.map(function (s) {
        var failing = s.consecutive_failures > 0;
        return el("li", { class: failing ? "failing" : "" },
          s.name + " (" + s.kind + "): " + (failing ? "failing, " + s.consecutive_failures + " attempts in a row: " + (s.last_error || "") : "ok") +
          (s.pending ? ", " + s.pending + " pending" : ""));
      })));
  }

  var STATE_Y = { OPEN: 0, HOLD: 1, CLOSED: 2 };
  function renderTimeline(history, funnel) {
    var items = history.slice().reverse(); // oldest first
    var svg = svgEl("svg", { viewBox: "0 0 600 160", role: "img", "aria-labelledby": "tl-title", preserveAspectRatio: "none" });
    var title = svgEl("title", { id: "tl-title" });
    title.textContent = "Allowed share over time, " + items.length + " recorded changes";
    svg.appendChild(title);
    if (items.length) {
      var t0 = Date.parse(items[0].recorded_at), t1 = Date.now();
      var span = Math.max(t1 - t0, 1);
      var x = function (t) { return 10 + (580 * (Date.parse(t) - t0) / span); };
      var colours = { OPEN: "#0b6b2e", HOLD: "#7a4a00", CLOSED: "#a0141e" };
      items.forEach(function (e, i) {
        var x0 = x(e.recorded_at), x1 = i + 1 < items.length ? x(items[i + 1].recorded_at) : 590;
        var share = typeof e.allowed_rollout_percent === "number" ? e.allowed_rollout_percent : 0;
        var h = Math.max(2, share * 1.2);
        svg.appendChild(svgEl("rect", { x: x0, y: 140 - h, width: Math.max(x1 - x0, 1), height: h, fill: colours[e.state] || "#3f3f46", opacity: 0.85 }));
        svg.appendChild(svgEl("rect", { x: x0, y: 146, width: Math.max(x1 - x0, 1), height: 10, fill: colours[e.state] || "#3f3f46" }));
      });
    }
    var rows = history.map(function (e) {
      var details = el("details", { class: "evidence" },
        el("summary", { text: "Evidence for #" + e.sequence }),
        el("pre", { text: "Opens on demand." }));
      details.addEventListener("toggle", function () {
        if (!details.open || details.getAttribute("data-loaded")) return;
        details.setAttribute("data-loaded", "1");
        var pre = details.querySelector("pre");
        pre.textContent = "Loading…";
        api("GET", "/v1/funnels/" + encodeURIComponent(funnel) + "/decisions/" + e.sequence).then(function (full) {
          pre.textContent = JSON.stringify(full.payload, null, 2);
        }, function (err) { pre.textContent = "Cannot load: " + err.message; });
      });
      return el("tr", { "data-seq": e.sequence },
        el("td", null, el("time", { datetime: e.recorded_at, text: when(e.recorded_at) })),
        el("td", { text: e.kind }),
        el("td", null, badge("s", e.state)),
        el("td", { text: pct(e.allowed_rollout_percent) }),
        el("td", { class: "hide-narrow", text: e.blocking_stage || "—" }),
        el("td", { class: "hide-narrow", text: e.actor ? (e.actor + ": " + e.reason) : "" }),
        el("td", null, details));
    });
    return el("section", { "aria-labelledby": "h-history", class: "timeline" },
      el("h2", { id: "h-history", text: "History" }),
      svg,
      el("div", { class: "table-wrap" }, el("table", { id: "history" },
        el("caption", { class: "visually-hidden", text: "Recorded decision changes, newest first" }),
        el("thead", null, el("tr", null,
          el("th", { scope: "col", text: "When" }), el("th", { scope: "col", text: "Change" }),
          el("th", { scope: "col", text: "State" }), el("th", { scope: "col", text: "Share" }),
          el("th", { scope: "col", class: "hide-narrow", text: "Blocking" }), el("th", { scope: "col", class: "hide-narrow", text: "Who and why" }),
          el("th", { scope: "col", text: "Evidence" }))),
        el("tbody", null, rows))));
  }

  function field(label, input) {
    return [el("label", { for: input.id, text: label }), input];
  }
  function actionForm(title, fields, button, onSubmit) {
    var status = el("p", { role: "status", class: "muted" });
    var form = el("form", null, el("fieldset", null, el("legend", { text: title }), fields, button, status));
    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      status.className = "muted";
      status.textContent = "Sending…";
      onSubmit().then(function (d) {
        status.textContent = "Done: the gate is " + d.state + " at " + pct(d.allowed_rollout_percent) + ".";
      }, function (e) {
        status.className = "error";
        status.textContent = "Refused: " + e.message;
      });
    });
    return form;
  }

  function renderControls() {
    var holder = document.getElementById("controls");
    if (!holder) return;
    if (!(who.authenticated && who.role === "operator") || !current.funnel) {
      holder.replaceChildren();
      holder.hidden = true;
      return;
    }
    var f = encodeURIComponent(current.funnel);
    var ovState = el("select", { id: "ov-state" }, el("option", { value: "CLOSED", text: "CLOSED" }), el("option", { value: "OPEN", text: "OPEN" }));
    var ovTtl = el("input", { id: "ov-ttl", type: "number", min: 1, max: 604800, value: 3600, required: true });
    var ovPct = el("input", { id: "ov-percent", type: "number", min: 1, max: 100, placeholder: "first ramp step" });
    var ovReason = el("input", { id: "ov-reason", type: "text", required: true, maxlength: 1024 });
    var setOv = actionForm("Override the gate",
      [].concat(field("Force state", ovState), field("Lasts (seconds)", ovTtl), field("Share when OPEN (%)", ovPct), field("Reason (recorded)", ovReason)),
      el("button", { type: "submit", class: "danger", id: "ov-submit", text: "Set override" }),
      function () {
        var body = { state: ovState.value, ttl_seconds: Number(ovTtl.value), reason: ovReason.value };
        if (ovPct.value) body.percent = Number(ovPct.value);
        return api("POST", "/v1/funnels/" + f + "/override", body);
      });
    var clrReason = el("input", { id: "clr-reason", type: "text", maxlength: 1024 });
    var clearOv = actionForm("Clear the override", field("Reason (optional)", clrReason),
      el("button", { type: "submit", id: "clr-submit", text: "Clear override" }),
      function () { return api("DELETE", "/v1/funnels/" + f + "/override", { reason: clrReason.value }); });
    var phSel = el("select", { id: "ph-phase" }, el("option", { value: "build", text: "build" }), el("option", { value: "operate", text: "operate" }));
    var phReason = el("input", { id: "ph-reason", type: "text", required: true, maxlength: 1024 });
    var phase = actionForm("Change the phase", [].concat(field("Phase", phSel), field("Reason (recorded)", phReason)),
      el("button", { type: "submit", id: "ph-submit", text: "Set phase" }),
      function () { return api("POST", "/v1/funnels/" + f + "/phase", { phase: phSel.value, reason: phReason.value }); });
    holder.replaceChildren(el("h2", { id: "h-controls", text: "Operator actions" }), el("div", { class: "controls" }, setOv, clearOv, phase));
    holder.hidden = false;
  }

  function loadHistory(funnel) {
    return api("GET", "/v1/funnels/" + encodeURIComponent(funnel) + "/decisions?limit=100").then(function (h) {
      current.history = h.decisions || [];
      var old = document.querySelector("#main section.timeline");
      var fresh = renderTimeline(current.history, funnel);
      if (old) old.replaceWith(fresh); else document.getElementById("history-slot").appendChild(fresh);
    });
  }

  function showFunnel(funnel) {
    current.funnel = funnel;
    document.title = funnel + " · funnelgate";
    var crumbs = document.getElementById("crumbs");
    crumbs.replaceChildren(el("li", null, el("a", { href: "/dashboard", text: "Funnels" })), el("li", null, el("a", { href: location.pathname, "aria-current": "page", text: funnel })));
    var main = document.getElementById("main");
    var base = "/v1/funnels/" + encodeURIComponent(funnel);
    api("GET", base + "/view").then(function (view) {
      current.view = view;
      main.replaceChildren(
        el("h1", null, "Funnel ", el("span", { id: "funnel-name", text: funnel })),
        renderDecision(view),
        el("section", { id: "controls", "aria-labelledby": "h-controls", hidden: true }),
        el("div", { id: "history-slot" }));
      renderControls();
      return loadHistory(funnel);
    }).then(function () {
      document.body.setAttribute("data-ready", "funnel");
      // Sink health changes without a decision change (retries): refresh it every 5 seconds.
      setInterval(function () {
        api("GET", base + "/view").then(function (v) {
          current.view.notifications = v.notifications;
          var old = document.querySelector("#decision section.sinks");
          var fresh = renderSinks(v.notifications);
          if (old && fresh) old.replaceWith(fresh);
          else if (!old && fresh) document.getElementById("decision").appendChild(fresh);
          else if (old && !fresh) old.remove();
        }, function () { /* next round */ });
      }, 5000);
      connect(base + "/events", function (d) {
        var before = current.view && current.view.decision;
        current.view.decision = d;
        document.getElementById("decision").replaceWith(renderDecision(current.view));
        if (!before || before.state !== d.state || before.allowed_rollout_percent !== d.allowed_rollout_percent) {
          announce(funnel + " is now " + d.state + " at " + pct(d.allowed_rollout_percent));
        }
        document.body.setAttribute("data-sequence", String(d.sequence));
        loadHistory(funnel).catch(function () { /* the next event retries */ });
      });
    }).catch(function (e) {
      main.replaceChildren(el("h1", { text: funnel }), el("p", { class: "error", role: "alert", text: "Cannot load this funnel: " + e.message }), el("p", null, el("a", { href: "/dashboard", text: "Back to every funnel" })));
    });
  }

  function route() {
    var m = location.pathname.match(/^\/dashboard\/funnels\/([^/]+)\/?$/);
    if (m) showFunnel(decodeURIComponent(m[1]));
    else showList();
  }

  document.addEventListener("DOMContentLoaded", function () {
    setupAuth();
    refreshWho();
    route();
  });
})();
