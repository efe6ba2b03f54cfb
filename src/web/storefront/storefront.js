// The reference storefront (CONTRACT §15): plain JavaScript over the public API only.
// Views are hash routes (#/, #/category/ID, #/services/ID, #/team, #/shop), so the server
// serves one page; each view sends a page view by beacon with a path such as /services/ID.
"use strict";

(function () {
  const SLUG = document.querySelector('meta[name="mango-store"]').content;
  const main = document.getElementById("main");
  const state = { store: null, services: null, staff: null, categories: null, products: null };

  // ---- the API -------------------------------------------------------------------------

  async function api(path, options) {
    const init = Object.assign({ headers: {} }, options || {});
    init.headers = Object.assign({ "X-Store-Id": SLUG }, init.headers);
    const response = await fetch("/api/v1/" + path, init);
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

  async function list(resource, query) {
    const body = await api(resource + (query ? "?" + query : ""));
    return body.data;
  }

  function beacon(path) {
    const event = JSON.stringify({
      name: "page_view",
      url: location.origin + path,
      referrer: document.referrer || undefined,
    });
    const url = "/api/v1/analytics/events?store=" + encodeURIComponent(SLUG);
    if (navigator.sendBeacon) {
      navigator.sendBeacon(url, event);
    } else {
      fetch(url, { method: "POST", body: event, keepalive: true }).catch(() => {});
    }
  }

  // ---- small DOM helpers (no innerHTML with data) --------------------------------------

  function el(tag, attrs, children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (key === "text") node.textContent = value;
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : value);
    }
    for (const child of [].concat(children || [])) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function show(...nodes) {
    main.replaceChildren(...nodes);
  }

  function alertBox(message) {
    return el("p", { class: "alert", role: "alert", text: message });
  }

  function money(price) {
    if (!price || price.amount === undefined) return "";
    const amount = Number(price.amount);
    try {
      return new Intl.NumberFormat(undefined, {
        style: "currency", currency: price.currency || "USD",
        maximumFractionDigits: amount % 1 === 0 ? 0 : 2,
      }).format(amount);
    } catch (_) {
      return price.amount + " " + (price.currency || "");
    }
  }

  function minutes(n) {
    if (!n) return "";
    const h = Math.floor(n / 60), m = n % 60;
    return (h ? h + " h" : "") + (h && m ? " " : "") + (m ? m + " min" : "");
  }

  function titleCase(id) {
    return String(id).replace(/^(cat_)/, "").replace(/[_-]+/g, " ")
      .replace(/\b\w/g, (c) => c.toUpperCase());
  }

  function initials(name) {
    return String(name || "?").split(/\s+/).map((w) => w[0]).join("").slice(0, 2).toUpperCase();
  }

  // ---- the store and its theme ---------------------------------------------------------

  const THEME_VARS = {
    primary_color: "--primary", primary_text_color: "--primary-ink",
    accent_color: "--accent", secondary_color: "--accent",
    background_color: "--bg", surface_color: "--surface", text_color: "--ink",
  };
  const COLOUR = /^(#[0-9a-fA-F]{3,8}|rgba?\([0-9., %]+\)|hsla?\([0-9., %deg]+\)|[a-zA-Z]{3,20})$/;

  function applyStore(store) {
    state.store = store;
    document.title = store.name;
    for (const id of ["store-name", "foot-name"]) {
      document.getElementById(id).textContent = store.name;
    }
    const theme = store.theme || {};
    const root = document.documentElement.style;
    for (const [key, cssVar] of Object.entries(THEME_VARS)) {
      if (typeof theme[key] === "string" && COLOUR.test(theme[key].trim())) {
        root.setProperty(cssVar, theme[key].trim());
      }
    }
    if (typeof theme.font === "string" && /^[\w \-]{1,40}$/.test(theme.font)) {
      root.setProperty("--font", '"' + theme.font + '", system-ui, -apple-system, "Segoe UI", Roboto, Arial, sans-serif');
    }
  }

  // ---- catalog data, with graceful fallbacks ------------------------------------------

  async function services() {
    if (!state.services) state.services = await list("services");
    return state.services.filter((s) => s.is_active !== false);
  }

  // Categories: the declared `categories` resource when the store has one, else the distinct
  // `category_id` / `category` values of the services.
  async function categories() {
    if (state.categories) return state.categories;
    try {
      const cats = await list("categories");
      state.categories = cats.map((c) => ({ id: String(c.id), name: c.name || titleCase(c.id), field: "category_id" }));
    } catch (err) {
      if (err.status !== 404) throw err;
      const seen = new Map();
      for (const s of await services()) {
        const field = s.category_id !== undefined ? "category_id" : "category";
        const value = s[field];
        if (value !== undefined && value !== null && !seen.has(String(value))) {
          seen.set(String(value), { id: String(value), name: s.category_name || titleCase(value), field });
        }
      }
      state.categories = [...seen.values()];
    }
    return state.categories;
  }

  function matches(item, field, value) {
    const v = item[field];
    if (Array.isArray(v)) return v.map(String).includes(String(value));
    return v !== undefined && v !== null && typeof v !== "object" && String(v) === String(value);
  }

  // A filtered list from the server (CONTRACT §12), filtered again here in case this server
  // ignores the query.
  async function filtered(resource, field, value) {
    const q = encodeURIComponent(field) + "=" + encodeURIComponent(value);
    let items;
    try {
      items = await list(resource, q);
    } catch (err) {
      if (err.status !== 400) throw err;
      items = await list(resource);
    }
    return items.filter((item) => matches(item, field, value));
  }

  // ---- views --------------------------------------------------------------------------

  function serviceCard(s) {
    return el("li", {}, el("article", { class: "card" }, [
      s.category || s.category_id ? el("span", { class: "tag", text: titleCase(s.category_name || s.category || s.category_id) }) : null,
      el("h3", {}, el("a", { href: "#/services/" + encodeURIComponent(s.id), text: s.name || s.id })),
      s.description ? el("p", { text: s.description }) : null,
      el("div", { class: "meta" }, [
        el("span", {}, [el("span", { class: "price", text: money(s.price) }), " ",
          el("span", { class: "dur", text: s.duration_minutes ? "· " + minutes(s.duration_minutes) : "" })]),
        el("a", { class: "btn small", href: "#/services/" + encodeURIComponent(s.id), text: "Book", "aria-label": "Book " + (s.name || s.id) }),
      ]),
    ]));
  }

  async function viewServices(categoryId) {
    const [all, cats] = await Promise.all([services(), categories()]);
    const category = cats.find((c) => c.id === categoryId);
    const shown = category ? (await filtered("services", category.field, category.id)).filter((s) => s.is_active !== false) : all;
    const chips = el("ul", { class: "chips", "aria-label": "Categories" }, [
      el("li", {}, el("a", { class: "chip", href: "#/", "aria-current": category ? false : "true", text: "All" })),
      ...cats.map((c) => el("li", {}, el("a", {
        class: "chip", href: "#/category/" + encodeURIComponent(c.id),
        "aria-current": category && category.id === c.id ? "true" : false, text: c.name,
      }))),
    ]);
    show(
      el("section", { class: "hero" }, [
        el("h1", { text: category ? category.name : state.store.name }),
        el("p", { text: category ? shown.length + " services" : "Choose a service, pick a time that suits you, and book in under a minute." }),
      ]),
      chips,
      shown.length ? el("ul", { class: "grid", "aria-label": "Services" }, shown.map(serviceCard)) : el("p", { class: "empty", text: "No services here yet." }),
    );
  }

  async function viewTeam() {
    if (!state.staff) state.staff = await list("staff");
    show(
      el("section", { class: "hero" }, [el("h1", { text: "Our team" }), el("p", { text: "The people who will look after you." })]),
      el("ul", { class: "grid" }, state.staff.map((p) => el("li", {}, el("article", { class: "card" }, [
        el("div", { class: "person" }, [el("span", { class: "avatar", "aria-hidden": "true", text: initials(p.name) }),
          el("div", {}, [el("h3", { text: p.name }), el("small", { text: p.title || "" })])]),
        p.bio ? el("p", { text: p.bio }) : null,
      ])))),
    );
  }

  async function viewShop() {
    if (!state.products) state.products = await list("products");
    show(
      el("section", { class: "hero" }, [el("h1", { text: "Shop" }), el("p", { text: "Professional care to take home. Ask for them at your next visit." })]),
      el("ul", { class: "grid" }, state.products.map((p) => el("li", {}, el("article", { class: "card" }, [
        p.brand ? el("span", { class: "tag", text: p.brand }) : null,
        el("h3", { text: p.name || p.id }),
        el("div", { class: "meta" }, [el("span", { class: "price", text: money(p.price) }),
          el("span", { class: "dur", text: p.stock === 0 ? "Out of stock" : "" })]),
      ])))),
    );
  }

  // The next 14 days as local dates.
  function nextDays() {
    const days = [];
    const today = new Date();
    today.setHours(0, 0, 0, 0);
    for (let i = 0; i < 14; i++) {
      const d = new Date(today);
      d.setDate(today.getDate() + i);
      days.push(d);
    }
    return days;
  }

  function isoDate(d) {
    return d.getFullYear() + "-" + String(d.getMonth() + 1).padStart(2, "0") + "-" + String(d.getDate()).padStart(2, "0");
  }

  // Times are shown as the salon's wall clock: a slot's `start_at` carries the business's own
  // offset (§13), so its text is the time on the salon's clock, wherever the customer is.
  // (A time from the fallback picker is the browser's own local time.)
  function timeLabel(t) {
    return t.wall ? t.wall.slice(11, 16) : t.start.toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit" });
  }

  function whenLabel(t) {
    if (!t.wall) {
      return t.start.toLocaleString(undefined, { weekday: "long", day: "numeric", month: "long", hour: "2-digit", minute: "2-digit" });
    }
    const [y, m, d] = t.wall.slice(0, 10).split("-").map(Number);
    const day = new Date(Date.UTC(y, m - 1, d)).toLocaleDateString(undefined, { weekday: "long", day: "numeric", month: "long", timeZone: "UTC" });
    return day + " at " + t.wall.slice(11, 16);
  }

  // Free times of a day: from the availability API when the server has it (§13), else every
  // half hour from 10:00 to 19:00 local time (Biz still decides when the booking is confirmed).
  async function freeTimes(service, staffId, day) {
    const q = "service_id=" + encodeURIComponent(service.id) + "&date=" + isoDate(day) +
      (staffId ? "&staff_id=" + encodeURIComponent(staffId) : "");
    try {
      const body = await api("availability?" + q);
      return body.data.slots.map((s) => ({ start: new Date(s.start_at), wall: s.start_at, staffId: s.staff_id || null }))
        .filter((s) => s.start > new Date());
    } catch (err) {
      if (err.status !== 404 || err.code === "service_not_found") throw err;
    }
    const times = [];
    for (let minute = 10 * 60; minute + (service.duration_minutes || 30) <= 19 * 60 + 30; minute += 30) {
      const t = new Date(day);
      t.setHours(Math.floor(minute / 60), minute % 60, 0, 0);
      if (t > new Date(Date.now() + 30 * 60000)) times.push({ start: t, staffId: null });
    }
    return times;
  }

  async function viewService(id) {
    const service = (await api("services/" + encodeURIComponent(id))).data;
    const team = await filtered("staff", "service_ids", service.id);
    const booking = { staffId: "", day: null, time: null };

    const alertSlot = el("div", { "aria-live": "polite" });
    const timesBox = el("div", { class: "times", role: "group", "aria-label": "Times" },
      el("span", { class: "note", text: "Pick a day to see its free times." }));
    const dayButtons = [];
    const staffSelect = el("select", { id: "staff", name: "staff" }, [
      el("option", { value: "", text: "Anyone available" }),
      ...team.map((p) => el("option", { value: p.id, text: p.name })),
    ]);
    const name = el("input", { type: "text", id: "customer-name", name: "name", autocomplete: "name", required: true });
    const phone = el("input", { type: "tel", id: "customer-phone", name: "phone", autocomplete: "tel" });
    const email = el("input", { type: "email", id: "customer-email", name: "email", autocomplete: "email" });
    const submit = el("button", { class: "btn", type: "submit", id: "reserve", text: "Reserve this time" });

    async function pickDay(day, button) {
      booking.day = day;
      booking.time = null;
      for (const b of dayButtons) b.setAttribute("aria-pressed", b === button ? "true" : "false");
      timesBox.replaceChildren(el("span", { class: "note", text: "Finding free times…" }));
      try {
        const times = await freeTimes(service, booking.staffId, day);
        if (!times.length) {
          timesBox.replaceChildren(el("span", { class: "note", text: "No free times this day — try another." }));
          return;
        }
        const buttons = times.map((t) => el("button", {
          type: "button", class: "chip time", "aria-pressed": "false", "data-start": t.start.toISOString(),
          text: timeLabel(t),
          onclick: (e) => {
            booking.time = t;
            for (const b of buttons) b.setAttribute("aria-pressed", b === e.currentTarget ? "true" : "false");
          },
        }));
        timesBox.replaceChildren(...buttons);
      } catch (err) {
        timesBox.replaceChildren(alertBox(err.message));
      }
    }

    const days = el("div", { class: "days", role: "group", "aria-label": "Day" }, nextDays().map((d, i) => {
      const b = el("button", {
        type: "button", class: "chip day", "aria-pressed": "false", "data-date": isoDate(d),
        text: i === 0 ? "Today" : i === 1 ? "Tomorrow" : d.toLocaleDateString(undefined, { weekday: "short", month: "short", day: "numeric" }),
        onclick: (e) => pickDay(d, e.currentTarget),
      });
      dayButtons.push(b);
      return b;
    }));
    staffSelect.addEventListener("change", () => {
      booking.staffId = staffSelect.value;
      if (booking.day) pickDay(booking.day, dayButtons.find((b) => b.getAttribute("aria-pressed") === "true"));
    });

    const form = el("form", { class: "panel", id: "book", novalidate: true }, [
      el("h2", { text: "Book" }),
      el("div", { class: "field" }, [el("label", { for: "staff", text: "With" }), staffSelect]),
      el("fieldset", {}, [el("legend", { text: "Day" }), days]),
      el("fieldset", {}, [el("legend", { text: "Time" }), timesBox]),
      el("div", { class: "field" }, [el("label", { for: "customer-name", text: "Your name" }), name]),
      el("div", { class: "field" }, [el("label", { for: "customer-phone", text: "Phone" }), phone]),
      el("div", { class: "field" }, [el("label", { for: "customer-email", text: "Email" }), email,
        el("p", { class: "note", text: "A phone number or an email, so the salon can reach you." })]),
      alertSlot,
      submit,
    ]);
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      alertSlot.replaceChildren();
      if (!booking.time) return alertSlot.replaceChildren(alertBox("Please pick a day and a time."));
      if (!name.value.trim()) return alertSlot.replaceChildren(alertBox("Please tell us your name."));
      if (!phone.value.trim() && !email.value.trim()) return alertSlot.replaceChildren(alertBox("Please give a phone number or an email."));
      submit.disabled = true;
      try {
        const customer = { name: name.value.trim() };
        if (phone.value.trim()) customer.phone = phone.value.trim();
        if (email.value.trim()) customer.email = email.value.trim();
        const body = { service_id: service.id, start_at: booking.time.start.toISOString(), customer };
        const staffId = booking.staffId || booking.time.staffId;
        if (staffId) body.staff_id = staffId;
        const draft = (await api("booking/draft", {
          method: "POST",
          headers: { "Content-Type": "application/json", "Idempotency-Key": crypto.randomUUID ? crypto.randomUUID() : String(Math.random()).slice(2) },
          body: JSON.stringify(body),
        })).data;
        viewDraft(service, draft, team, booking.time);
      } catch (err) {
        alertSlot.replaceChildren(alertBox(err.message));
        submit.disabled = false;
      }
    });

    show(el("div", { class: "item" }, [
      el("section", {}, [
        el("a", { class: "back", href: "#/", text: "← All services" }),
        service.category || service.category_id ? el("span", { class: "tag", text: titleCase(service.category || service.category_id) }) : null,
        el("h1", { id: "service-name", text: service.name || service.id }),
        service.description ? el("p", { text: service.description }) : null,
        el("dl", { class: "facts" }, [
          el("div", {}, [el("dt", { text: "Price" }), el("dd", { text: money(service.price) })]),
          el("div", {}, [el("dt", { text: "Duration" }), el("dd", { text: minutes(service.duration_minutes) })]),
        ]),
        team.length ? el("h2", { text: "Who does it" }) : null,
        team.length ? el("ul", { class: "staff-list" }, team.map((p) => el("li", { class: "person" }, [
          el("span", { class: "avatar", "aria-hidden": "true", text: initials(p.name) }),
          el("span", {}, [p.name, el("small", { text: p.title || "" })]),
        ]))) : null,
      ]),
      form,
    ]));
  }

  function viewDraft(service, draft, team, slot) {
    const when = whenLabel(slot || { start: new Date(draft.start_at) });
    const who = team.find((p) => p.id === draft.staff_id);
    const alertSlot = el("div", { "aria-live": "polite" });
    const confirm = el("button", { class: "btn", type: "button", id: "confirm", text: "Confirm booking" });
    const cancel = el("button", { class: "btn ghost", type: "button", text: "Change" });
    confirm.addEventListener("click", async () => {
      confirm.disabled = true;
      alertSlot.replaceChildren();
      try {
        const done = (await api("booking/draft/" + encodeURIComponent(draft.id) + "/confirm", { method: "POST" })).data;
        viewConfirmed(service, done, when);
      } catch (err) {
        alertSlot.replaceChildren(alertBox(err.message));
        confirm.disabled = err.status === 409 || err.status === 410;
      }
    });
    cancel.addEventListener("click", async () => {
      try { await api("booking/draft/" + encodeURIComponent(draft.id), { method: "DELETE" }); } catch (_) { /* it expires anyway */ }
      viewService(service.id);
    });
    show(el("section", { class: "panel", id: "draft" }, [
      el("h1", { class: "hero-title", text: "Check your booking" }),
      el("dl", { class: "summary" }, [
        el("dt", { text: "Service" }), el("dd", { text: service.name }),
        el("dt", { text: "When" }), el("dd", { text: when }),
        el("dt", { text: "With" }), el("dd", { text: who ? who.name : "Anyone available" }),
        el("dt", { text: "Price" }), el("dd", { text: money(draft.price) }),
        el("dt", { text: "Name" }), el("dd", { text: draft.customer.name }),
      ]),
      el("p", { class: "note", text: "We hold this time for you for a few minutes." }),
      alertSlot,
      el("div", { class: "actions" }, [confirm, cancel]),
    ]));
    confirm.focus();
  }

  function viewConfirmed(service, draft, when) {
    const code = draft.booking && draft.booking.confirmation_code;
    show(el("section", { class: "panel", id: "confirmed" }, [
      el("p", { class: "ok", role: "status", text: "You're booked. See you soon!" }),
      el("h1", { text: service.name }),
      el("p", { text: when || whenLabel({ start: new Date(draft.start_at) }) }),
      code ? el("p", { text: "Your confirmation code" }) : null,
      code ? el("p", { class: "code", id: "confirmation-code", text: code }) : null,
      el("a", { class: "btn ghost", href: "#/", text: "Back to services" }),
    ]));
    main.focus();
  }

  // ---- routing ------------------------------------------------------------------------

  async function route() {
    const hash = location.hash.replace(/^#/, "") || "/";
    const parts = hash.split("/").filter(Boolean).map(decodeURIComponent);
    const section = parts[0] === "team" ? "team" : parts[0] === "shop" ? "shop" : "services";
    for (const a of document.querySelectorAll("[data-nav]")) {
      a.setAttribute("aria-current", a.dataset.nav === section ? "page" : "false");
    }
    try {
      if (!state.store) applyStore((await api("store")).data);
      if (parts[0] === "services" && parts[1]) {
        beacon("/services/" + encodeURIComponent(parts[1]));
        await viewService(parts[1]);
      } else if (parts[0] === "category" && parts[1]) {
        beacon("/category/" + encodeURIComponent(parts[1]));
        await viewServices(parts[1]);
      } else if (section === "team") {
        beacon("/team");
        await viewTeam();
      } else if (section === "shop") {
        beacon("/shop");
        await viewShop();
      } else {
        beacon("/");
        await viewServices(null);
      }
    } catch (err) {
      show(alertBox(err.message || "Something went wrong. Please try again."));
    }
    window.scrollTo(0, 0);
  }

  window.addEventListener("hashchange", route);
  route();
})();
