// The merchant console (CONTRACT §15): the admin API of §10 in a page. The token lives in
// sessionStorage only (never a cookie, never a URL) and is sent only to this service.
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  const KEY = "mango.console";
  let session = null; // {token, slug}
  let store = null;

  // ---- the admin API ------------------------------------------------------------------

  async function admin(path, options) {
    const init = Object.assign({}, options || {});
    init.headers = Object.assign({ Authorization: "Bearer " + session.token }, init.headers || {});
    if (init.json !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(init.json);
      delete init.json;
    }
    const response = await fetch("/admin/v1/stores/" + encodeURIComponent(session.slug) + path, init);
    let body = null;
    try { body = await response.json(); } catch (_) { body = null; }
    if (!response.ok) {
      const err = new Error((body && body.detail) || ("The request failed (" + response.status + ")."));
      err.status = response.status;
      err.code = body && body.code;
      throw err;
    }
    return body;
  }

  function el(tag, attrs, children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (key === "text") node.textContent = value;
      else node.setAttribute(key, value === true ? "" : value);
    }
    for (const child of [].concat(children || [])) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  const SVG = "http://www.w3.org/2000/svg";
  function svg(tag, attrs, text) {
    const node = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    if (text !== undefined) node.textContent = text;
    return node;
  }

  // ---- sign in / out ------------------------------------------------------------------

  async function signIn(token, slug) {
    session = { token, slug };
    try {
      store = (await admin("")).data;
    } catch (err) {
      session = null;
      throw err;
    }
    sessionStorage.setItem(KEY, JSON.stringify({ token, slug }));
    $("sign-in").hidden = true;
    $("app").hidden = false;
    $("sign-out").hidden = false;
    $("who").textContent = store.name + " · " + store.slug;
    fillSettings(store);
    setDefaultPeriod();
    await Promise.all([loadAnalytics(), loadCache(), loadWebhooks()]).catch(() => {});
  }

  function signOut() {
    sessionStorage.removeItem(KEY);
    session = null;
    store = null;
    $("app").hidden = true;
    $("sign-in").hidden = false;
    $("sign-out").hidden = true;
    $("who").textContent = "";
    $("token").value = "";
    $("token").focus();
  }

  $("sign-in-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    $("sign-in-error").textContent = "";
    const token = $("token").value.trim();
    const slug = $("slug").value.trim().toLowerCase();
    if (!token || !slug) {
      $("sign-in-error").textContent = "Enter the key or token and the store.";
      return;
    }
    try {
      await signIn(token, slug);
    } catch (err) {
      $("sign-in-error").textContent = err.status === 401 ? "That key or token is not valid."
        : err.status === 404 ? "No such store for this key." : err.message;
    }
  });
  $("sign-out").addEventListener("click", signOut);

  // ---- settings -----------------------------------------------------------------------

  const FIELDS = ["name", "template", "primary_color", "custom_domain", "theme", "allowed_origins", "is_published"];

  function fillSettings(s) {
    $("f-name").value = s.name;
    $("f-template").value = s.template;
    $("f-domain").value = s.custom_domain || "";
    $("f-theme").value = JSON.stringify(s.theme || {}, null, 2);
    $("f-primary").value = (s.theme && s.theme.primary_color) || "";
    $("f-origins").value = (s.allowed_origins || []).join("\n");
    $("f-published").checked = !!s.is_published;
    paintSwatch();
    const site = s.custom_domain ? "https://" + s.custom_domain + "/" : "/";
    $("open-store").setAttribute("href", site);
  }

  function paintSwatch() {
    const v = $("f-primary").value.trim();
    $("swatch").style.setProperty("background", /^#[0-9a-fA-F]{3,8}$/.test(v) ? v : "#fff");
  }
  $("f-primary").addEventListener("input", paintSwatch);

  function clearErrors() {
    for (const f of FIELDS) {
      $("e-" + f).textContent = "";
      document.querySelector('[data-field="' + f + '"]').classList.remove("invalid");
    }
    $("settings-status").textContent = "";
  }

  function fieldError(field, message) {
    const box = $("e-" + field);
    if (!box) return false;
    box.textContent = message;
    document.querySelector('[data-field="' + field + '"]').classList.add("invalid");
    return true;
  }

  // The server names the field in backticks: "`custom_domain` must be …",
  // "`allowed_origins[1]` must be …".
  function fieldOf(detail) {
    const m = /`([a-z_]+)/.exec(detail || "");
    return m ? m[1] : null;
  }

  $("settings-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    clearErrors();
    let theme;
    try {
      theme = JSON.parse($("f-theme").value || "{}");
      if (!theme || typeof theme !== "object" || Array.isArray(theme)) throw new Error();
    } catch (_) {
      fieldError("theme", "The theme must be a JSON object, such as {\"primary_color\": \"#b4536a\"}.");
      return;
    }
    const primary = $("f-primary").value.trim();
    if (primary && !/^#[0-9a-fA-F]{3}([0-9a-fA-F]{3})?$/.test(primary)) {
      fieldError("primary_color", "A colour such as #b4536a.");
      return;
    }
    if (primary) theme.primary_color = primary; else delete theme.primary_color;
    const patch = {};
    const name = $("f-name").value.trim();
    if (name !== store.name) patch.name = name;
    const template = $("f-template").value.trim();
    if (template !== store.template) patch.template = template;
    if (JSON.stringify(theme) !== JSON.stringify(store.theme || {})) patch.theme = theme;
    const domain = $("f-domain").value.trim();
    if (domain !== (store.custom_domain || "")) patch.custom_domain = domain || null;
    const origins = $("f-origins").value.split(/[\s,]+/).filter(Boolean);
    if (origins.join("\n") !== (store.allowed_origins || []).join("\n")) patch.allowed_origins = origins;
    const published = $("f-published").checked;
    if (published !== store.is_published) patch.is_published = published;
    if (!Object.keys(patch).length) {
      $("settings-status").textContent = "Nothing to save.";
      return;
    }
    $("save").disabled = true;
    try {
      store = (await admin("", { method: "PATCH", json: patch })).data;
      fillSettings(store);
      $("who").textContent = store.name + " · " + store.slug;
      $("settings-status").textContent = "Saved.";
    } catch (err) {
      const field = fieldOf(err.message);
      if (!(field && fieldError(field, err.message))) {
        $("settings-status").textContent = "";
        fieldError(err.status === 409 ? "custom_domain" : "name", err.message);
      }
    } finally {
      $("save").disabled = false;
    }
  });

  // ---- analytics ----------------------------------------------------------------------

  function isoDay(d) {
    return d.toISOString().slice(0, 10);
  }

  function setDefaultPeriod() {
    const to = new Date();
    const from = new Date(Date.now() - 13 * 86400000);
    $("a-from").value = isoDay(from);
    $("a-to").value = isoDay(to);
  }

  async function loadAnalytics() {
    $("analytics-error").textContent = "";
    const q = "?from=" + encodeURIComponent($("a-from").value) + "&to=" + encodeURIComponent($("a-to").value);
    let data;
    try {
      data = (await admin("/analytics" + q)).data;
    } catch (err) {
      $("analytics-error").textContent = err.message;
      return;
    }
    const stats = [["Page views", data.page_views, "page-views"], ["Visitors", data.visitors, "visitors"],
      ["Sessions", data.sessions, "sessions"], ["Bookings", data.funnel.bookings_confirmed, "bookings"]];
    $("totals").replaceChildren(...stats.map(([label, n, id]) => el("div", { class: "stat" }, [
      el("span", { class: "n", id: "total-" + id, text: String(n) }), el("span", { class: "l", text: label }),
    ])));
    drawChart(data.daily || []);
    const steps = [["Service views", data.funnel.service_views], ["Drafts created", data.funnel.drafts_created],
      ["Bookings confirmed", data.funnel.bookings_confirmed]];
    const max = Math.max(1, ...steps.map((s) => s[1]));
    $("funnel").replaceChildren(...steps.map(([label, n]) => {
      const fill = el("div", { class: "fill" });
      fill.style.setProperty("width", (100 * n / max).toFixed(1) + "%");
      return el("div", { class: "step" }, [el("span", { text: label }), el("div", { class: "track" }, fill),
        el("span", { class: "v", text: String(n) })]);
    }));
  }

  // Page views as bars, visitors as a line, one slot per day; redrawn at a new width.
  let drawn = null;
  window.addEventListener("resize", () => { if (drawn) drawChart(drawn); });
  function drawChart(daily) {
    drawn = daily;
    // Drawn at the box's own width, so its labels keep their size on a phone.
    const W = Math.max(300, Math.round($("chart").clientWidth || 720));
    const H = W < 500 ? 200 : 240, L = 36, R = 10, T = 10, B = 28;
    const max = Math.max(4, ...daily.map((d) => Math.max(d.page_views, d.visitors)));
    const step = daily.length ? (W - L - R) / daily.length : 0;
    const y = (v) => T + (H - T - B) * (1 - v / max);
    const root = svg("svg", { viewBox: "0 0 " + W + " " + H, role: "img", id: "daily-chart",
      "aria-label": "Page views and visitors per day" });
    for (const v of [0, Math.round(max / 2), max]) {
      root.append(svg("line", { class: "axis", x1: L, x2: W - R, y1: y(v), y2: y(v) }));
      root.append(svg("text", { x: L - 6, y: y(v) + 4, "text-anchor": "end" }, String(v)));
    }
    const labelEvery = Math.ceil(daily.length / Math.max(2, Math.floor(W / 90)));
    daily.forEach((d, i) => {
      const x = L + i * step;
      const bar = svg("rect", { class: "bar-pv", x: x + step * 0.15, width: Math.max(1, step * 0.7),
        y: y(d.page_views), height: Math.max(0, y(0) - y(d.page_views)), rx: 2, "data-date": d.date });
      bar.append(svg("title", {}, d.date + ": " + d.page_views + " page views, " + d.visitors + " visitors, " + d.sessions + " sessions"));
      root.append(bar);
      if (i % labelEvery === 0) {
        root.append(svg("text", { x: x + step / 2, y: H - 8, "text-anchor": "middle" }, d.date.slice(5)));
      }
    });
    if (daily.length) {
      const points = daily.map((d, i) => (L + i * step + step / 2).toFixed(1) + "," + y(d.visitors).toFixed(1)).join(" ");
      root.append(svg("polyline", { class: "line-vis", points }));
    }
    const legend = el("div", { class: "legend" }, [
      el("span", {}, [el("span", { class: "k pv" }), "Page views"]),
      el("span", {}, [el("span", { class: "k vis" }), "Visitors"]),
    ]);
    $("chart").replaceChildren(root, legend);
  }

  $("period").addEventListener("submit", (e) => { e.preventDefault(); loadAnalytics(); });

  // ---- cache --------------------------------------------------------------------------

  async function loadCache() {
    const data = (await admin("/cache")).data;
    const rows = Object.entries(data).filter(([, v]) => v && typeof v === "object" && "hits" in v);
    const select = $("purge-resource");
    const chosen = select.value;
    select.replaceChildren(el("option", { value: "", text: "Everything" }),
      ...rows.map(([r]) => el("option", { value: r, text: r })));
    select.value = chosen;
    const entries = (v) => typeof v.entries === "object" ? (v.entries.memory + " mem / " + v.entries.sql + " SQL") : String(v.entries);
    $("cache-table").tBodies[0].replaceChildren(...rows.map(([r, v]) => el("tr", {}, [
      el("th", { scope: "row", text: r }), el("td", { text: entries(v) }), el("td", { text: String(v.hits) }),
      el("td", { text: String(v.misses) }), el("td", { text: String(v.stale) }),
    ])));
  }

  $("purge-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const resource = $("purge-resource").value;
    $("cache-status").textContent = "";
    try {
      await admin("/cache/purge", { method: "POST", json: resource ? { resource } : {} });
      $("cache-status").textContent = "Purged " + (resource || "everything") + ".";
      await loadCache();
    } catch (err) {
      $("cache-status").textContent = err.message;
    }
  });

  // ---- webhooks -----------------------------------------------------------------------

  async function loadWebhooks() {
    const data = (await admin("/webhooks")).data;
    const body = $("webhooks-table").tBodies[0];
    if (!data.length) {
      body.replaceChildren(el("tr", {}, el("td", { colspan: "4", class: "muted", text: "No deliveries yet." })));
      return;
    }
    body.replaceChildren(...data.map((d) => el("tr", {}, [
      el("td", { text: new Date(d.received_at).toLocaleString() }), el("td", { text: d.type }),
      el("td", {}, el("code", { text: d.id })), el("td", {}, el("span", { class: "pill " + d.status, text: d.status })),
    ])));
  }
  $("reload-webhooks").addEventListener("click", () => loadWebhooks().catch(() => {}));

  // ---- key rotation -------------------------------------------------------------------

  $("rotate").addEventListener("click", async () => {
    $("key-error").textContent = "";
    if (!window.confirm("Rotate the key? The current key stops working at once.")) return;
    try {
      const body = await admin("/api-keys", { method: "POST" });
      $("new-key-value").textContent = body.api_key;
      $("new-key").hidden = false;
      // A store key signed in with is the old key now; keep working with the new one.
      if (session.token.startsWith("msk_")) {
        session.token = body.api_key;
        sessionStorage.setItem(KEY, JSON.stringify(session));
      }
    } catch (err) {
      $("key-error").textContent = err.message;
    }
  });

  // ---- start --------------------------------------------------------------------------

  const hinted = document.querySelector('meta[name="mango-store"]').content;
  if (hinted && !hinted.startsWith("{{")) $("slug").value = hinted;
  const saved = sessionStorage.getItem(KEY);
  if (saved) {
    try {
      const s = JSON.parse(saved);
      signIn(s.token, s.slug).catch(signOut);
    } catch (_) {
      signOut();
    }
  } else {
    (hinted ? $("token") : $("slug")).focus();
  }
})();
