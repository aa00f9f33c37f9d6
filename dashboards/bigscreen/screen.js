"use strict";
// The command-center big screen.
//
// Data path: the REST API gives the whole picture (on start, and on every resync: after a
// reconnect, a hub restart, or when the hub says we fell behind); WS /api/live gives everything in
// between. Incoming data only marks panels dirty; a render loop redraws dirty panels at most
// RENDER_MS apart, so a 2,000-device community with telemetry every few seconds stays smooth.

const RENDER_MS = 500;          // at most two redraws a second, whatever the message rate
const OVERVIEW_MS = 5_000;      // site figures: aggregated in the store, cheap to ask for
const SERIES_MS = 60_000;       // charts: hourly and daily buckets move slowly
const DEVICES_MS = 30_000;      // full device list: catches devices that went silent (offline)
const HEALTH_MS = 3_000;        // /api/health: is the hub still receiving? (a stale-data banner if not)
const LIST_MAX = 30;            // rows kept per event list

/** Only an http(s) link becomes an href: the hub refuses others, but the store may hold older events. */
const webLink = (url) => typeof url === "string" && /^https?:\/\/[^\s]+$/i.test(url);

// ---------------------------------------------------------------- language
const word = (prefix, value) => (value == null ? "" : (I18N[lang][prefix + value] ?? String(value)));
function applyLanguage() {
  document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
  document.title = t("title");
  for (const el of document.querySelectorAll("[data-t]")) {
    const extra = el.querySelector(".count, .legend");      // keep a heading's live part
    el.textContent = t(el.dataset.t);
    if (extra) el.appendChild(extra);
  }
  for (const el of document.querySelectorAll("[data-t-ph]")) el.placeholder = t(el.dataset.tPh);
  for (const el of document.querySelectorAll(".lang-toggle")) el.textContent = t("lang");
  tickClock();
  $("[data-panel=buildings] .legend").innerHTML =
    `<i class="dot"></i>${t("leg_ok")}<i class="dot s-warn"></i>${t("leg_warn")}` +
    `<i class="dot s-fault"></i>${t("leg_fault")}<i class="dot s-off"></i>${t("offline")}`;
  $("[data-panel=chargers] .legend").innerHTML = ["charging", "available", "suspended_ev", "faulted", "unavailable"]
    .map((st) => `<i class="swatch st-${st}"></i>${word("st_", st)}`).join("");
  setLink(link);
  markAll();
}

// ---------------------------------------------------------------- formatting
const hhmm = (iso) => iso ? new Date(iso).toLocaleTimeString("en-GB", {timeZone: TZ, hour: "2-digit", minute: "2-digit", hour12: false}) : "";
const hour = (iso) => new Date(iso).toLocaleTimeString("en-GB", {timeZone: TZ, hour: "2-digit", hour12: false});
function since(iso) {
  const minutes = Math.floor((Date.now() - new Date(iso).getTime()) / 60_000);
  return minutes < 1 ? t("just_now") : t("ago", {m: minutes});
}
// Plates are personal data: the wall shows them masked whatever the token's role (琼A·1***5).
function maskPlate(plate) {
  if (!plate || plate.includes("*")) return plate || "";
  const body = plate.replace("·", "");
  return body.length <= 4 ? body : `${body.slice(0, 2)}·${body[2]}${"*".repeat(body.length - 4)}${body.slice(-1)}`;
}
const faultTitle = (kind, code) => {
  const f = catalog.kinds?.[kind]?.faults?.[code];
  return f ? f[lang] : code;
};
const kindTitle = (kind) => catalog.kinds?.[kind]?.[lang] ?? kind;
const deviceName = (d) => d.name || d.device;
const collator = new Intl.Collator("zh-CN", {numeric: true});   // one collator: localeCompare makes one a call
const byName = (a, b) => collator.compare(deviceName(a), deviceName(b));

// ---------------------------------------------------------------- state
let token = params.get("token") || sessionStorage.getItem("smarthub-token") || "";
const site = params.get("site");          // a wall per community (小区): ?site=sunshine; all sites without it
const bySite = (path) => site ? `${path}${path.includes("?") ? "&" : "?"}site=${encodeURIComponent(site)}` : path;
const ofSite = (x) => !site || x.site === site;
let me = {name: "", role: "viewer"};
let catalog = {kinds: {}, sites: {}};
let overview = null;
const devices = new Map();                 // "site/kind/device" -> device row of /api/devices
const alerts = new Map();                  // id -> alert
const incidentOf = new Map();              // alert id -> its active incident (a forced door, its cameras, its lane)
function keepIncident(i) {
  for (const [id, known] of incidentOf) if (known.id === i.id) incidentOf.delete(id);
  if (i.state !== "resolved") for (const id of i.alerts) incidentOf.set(id, i);
}
const lists = {gates: [], access: [], cameras: []};
const series = {};
const allocation = new Map();              // "site/device" -> its row of GET /api/charging/{site} (limit, why)
let allocatedKw = null;                    // what the allocators let the chargers draw together now (kW)
let link = "connecting";
const dirty = new Set();
const CHART_EVERY_MS = {traffic: 5_000};
const drawnAt = {};
const filled = new Set();
const mark = (...panels) => panels.forEach((p) => dirty.add(p));
const markAll = () => mark("kpis", "tiles", "elevators", "gates", "buildings", "alerts", "chargers", "access", "cameras",
                           "traffic", "power", "alertdays");
/** Kinds that have panels of their own; every other kind gets a generic tile. */
const HAND_MADE = new Set(["elevator", "gate", "access", "camera", "charger"]);
const keyOf = (d) => `${d.site}/${d.kind}/${d.device}`;
// What tests and benchmarks read: readiness, how often and how long the screen redraws, what failed.
window.screenState = {stale: false, staleSince: null, ready: false, renders: 0, renderMsTotal: 0, renderMsMax: 0, panelMs: {}, liveMessages: 0, liveMs: 0, resyncs: 0, errors: []};

// ---------------------------------------------------------------- API
async function api(path, options = {}) {
  const response = await fetch(path, {...options, headers: {Authorization: `Bearer ${token}`,
    ...(options.body ? {"Content-Type": "application/json"} : {}), ...(options.headers || {})}});
  if (response.status === 401) throw new Unauthorised();
  if (!response.ok) throw new Error(`${path}: ${response.status} ${await response.text()}`);
  return response.json();
}

async function loadOverview() {
  overview = await api(bySite("/api/overview"));
  mark("kpis", "tiles");
}
async function loadDevices() {
  const rows = await api(bySite("/api/devices"));
  devices.clear();
  for (const d of rows) devices.set(keyOf(d), d);
  mark("elevators", "buildings", "chargers", "kpis");
}
async function loadSeries() {
  const [traffic, yesterday, power, days] = await Promise.all([
    api(bySite("/api/series/traffic")), api(bySite("/api/series/traffic?days_back=1")),
    api(bySite("/api/series/charging_power?hours=24&every_s=900")), api(bySite("/api/series/alerts?days=30"))]);
  Object.assign(series, {traffic, yesterday, power, days});
  mark("traffic", "power", "alertdays");
}
/** Each pile's limit and why, from the orderly-charging allocator of each site that declares a capacity. */
async function loadCharging() {
  const slugs = Object.entries(catalog.sites).filter(([slug, s]) => ofSite({site: slug}) && (s.power_cap_kw != null || s.transformer_kva != null));
  const answers = await Promise.all(slugs.map(([slug]) => api(`/api/charging/${encodeURIComponent(slug)}`).catch(() => null)));
  allocation.clear();
  for (const a of answers) for (const c of a?.connectors || []) allocation.set(`${a.site}/${c.device}`, c);
  const planned = answers.filter((a) => a);
  allocatedKw = planned.length ? planned.reduce((sum, a) => sum + a.used_kw, 0) : null;
  mark("chargers", "power");
}
async function loadEvents() {
  const [passages, access, detections] = await Promise.all([
    api(bySite(`/api/events?kind=gate&type=passage&limit=${LIST_MAX}`)),
    api(bySite(`/api/events?kind=access&limit=${LIST_MAX}`)),
    api(bySite(`/api/events?kind=camera&type=detection&limit=${LIST_MAX}`))]);
  lists.gates = passages;
  lists.access = access.filter((e) => e.type === "access" || (e.type === "fault" && e.active));
  lists.cameras = detections.filter((e) => e.phase !== "update");
  mark("gates", "access", "cameras");
}
async function loadAlerts() {
  const [open, acked, incidents] = await Promise.all([api(bySite("/api/alerts?state=open&limit=500")),
    api(bySite("/api/alerts?state=acknowledged&limit=500")), api(bySite("/api/incidents?limit=500"))]);
  alerts.clear();
  for (const a of [...open, ...acked]) alerts.set(a.id, a);
  incidentOf.clear();
  for (const i of incidents) keepIncident(i);
  mark("alerts", "kpis");
}
/** The whole picture again: after login, reconnect, hub restart, or a resync from the hub. */
async function resync() {
  window.screenState.resyncs++;
  [me, catalog] = await Promise.all([api("/api/me"), api("/api/catalog")]);
  const slug = site || Object.keys(catalog.sites)[0];
  $("#site-name").textContent = catalog.sites[slug]?.name || slug || "";
  await Promise.all([loadOverview(), loadDevices(), loadSeries(), loadEvents(), loadAlerts(), loadCharging()]);
}

// ---------------------------------------------------------------- live
let socket = null;
let backoff = 1000;

// ---------------------------------------------------------------- stale data (the banner; common.js keeps the state)
function showStale() {
  const el = $("#stale");
  const lost = link === "reconnecting";
  const since = [hubStale?.since, lost ? linkLostAt : null].filter(Boolean).sort()[0] || null;
  window.screenState.stale = since !== null;
  window.screenState.staleSince = since;
  if (!el) return;
  el.classList.toggle("hidden", since === null);
  if (since === null) return;
  const at = new Date(since);
  const when = `${dayLabel(since)} ${at.toLocaleTimeString("en-GB", {timeZone: TZ, hour12: false})}`;  // 12-01 19:04:03
  const why = [...(hubStale?.reasons || []).map((code) => faultTitle("hub", code)), lost ? t("stale_link") : null];
  el.innerHTML = `⚠ ${esc(t("stale", {t: when}))}<small>${esc([t("stale_hint"), ...why.filter(Boolean)].join(" · "))}</small>`;
}
function connect() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  socket = new WebSocket(`${scheme}://${location.host}/api/live?token=${encodeURIComponent(token)}`);
  socket.onopen = () => {
    backoff = 1000;
    // Whatever happened while we were away (a hub restart, a network blip) is in the REST API.
    resync().then(() => setLink("live")).catch(failed);
  };
  socket.onmessage = (m) => {
    const started = performance.now();
    onLive(JSON.parse(m.data));
    window.screenState.liveMessages++;
    window.screenState.liveMs += performance.now() - started;
  };
  socket.onclose = (e) => {
    socket = null;
    if (e.code === 4401) { showLogin(t("bad_token")); return; }
    setLink("reconnecting");
    setTimeout(connect, backoff);
    backoff = Math.min(backoff * 2, 10_000);
  };
}
function onLive(message) {
  if (message.type === "resync") { resync().catch(failed); return; }
  if (message.type === "alert") {
    const a = message.alert;
    if (!ofSite(a)) return;
    const today = series.days?.days?.at(-1);
    if (today && a.state === "open" && !alerts.has(a.id) && a.opened_at >= today.day) {  // a new one: in the chart now
      today[a.severity] += 1;
      mark("alertdays");
    }
    if (a.state === "resolved") alerts.delete(a.id); else alerts.set(a.id, a);
    mark("alerts", "kpis", "buildings", "elevators");
  } else if (message.type === "incident") {
    if (ofSite(message.incident)) { keepIncident(message.incident); mark("alerts"); }
  } else if (message.type === "devices") {
    for (const change of message.devices.filter(ofSite)) {
      const key = keyOf(change);
      const d = devices.get(key) || {...change, telemetry: {}, open_faults: {}, registered: false};
      d.online = change.online; d.last_seen = change.last_seen;
      d.telemetry = {...d.telemetry, ...change.telemetry};
      d.open_faults = Object.fromEntries(change.open_faults.map((c) => [c, d.open_faults?.[c] || {since: change.last_seen}]));
      devices.set(key, d);
    }
    mark("elevators", "buildings", "chargers");
  } else if (message.type === "event") {
    const e = message.event;
    if (!ofSite(e)) return;
    e.fresh = true;
    if (e.kind === "gate" && e.type === "passage") { push("gates", e); countPassage(e); }
    else if (e.kind === "access" && (e.type === "access" || (e.type === "fault" && e.active))) push("access", e);
    else if (e.kind === "camera" && e.type === "detection" && e.phase !== "update") push("cameras", e);
  }
}
/** A live passage counts in today's hourly chart at once, not at the next reload of the series. */
function countPassage(e) {
  const hours = series.traffic?.[e.direction];
  const at = new Date(e.time).getTime();
  const slot = hours?.find(([start]) => at >= new Date(start).getTime() && at < new Date(start).getTime() + 3_600_000);
  if (slot) { slot[1] += 1; mark("traffic"); }
}
function push(list, event) {
  lists[list].unshift(event);
  lists[list].length = Math.min(lists[list].length, LIST_MAX);
  mark(list);
}

// ---------------------------------------------------------------- panels
const RENDER = {
  kpis() {
    if (!overview) return false;
    const o = overview;
    const kinds = Object.entries(o.devices);
    const online = kinds.reduce((n, [, k]) => n + k.online, 0), total = kinds.reduce((n, [, k]) => n + k.total, 0);
    kpi("devices", `${num(online)}<small>/ ${num(total)}</small>`,
        kinds.filter(([, k]) => k.total).map(([kind, k]) => `${esc(kindTitle(kind))}<b>${k.online}/${k.total}</b>`));
    kpi("vehicles", `${num(o.vehicles.in_today)}<small>${t("in")}</small>`,
        [`${t("out")}<b>${num(o.vehicles.out_today)}</b>`, `${t("inside")}<b>${num(o.vehicles.inside)}</b>`]);
    kpi("access", `${num(o.access.granted_today)}<small>${t("granted")}</small>`,
        [`${t("denied")}<b class="${o.access.denied_today ? "major" : ""}">${num(o.access.denied_today)}</b>`,
         `${t("detections")}<b>${num(o.detections_today)}</b>`]);
    const sev = ["critical", "major", "minor", "info"];
    const openTotal = sev.reduce((n, s) => n + o.alerts.open[s], 0);
    kpi("alerts", `<span class="${o.alerts.open.critical ? "critical" : openTotal ? "major" : "ok"}">${openTotal}</span>`
        + `<small>${t("acked")} ${sev.reduce((n, s) => n + o.alerts.acknowledged[s], 0)}</small>`,
        sev.map((s) => `<span class="${s}">${t("sev_" + s)}</span><b>${o.alerts.open[s]}</b>`));
    $("#kpi-alerts").classList.toggle("alarm", o.alerts.open.critical > 0);
    const e = o.elevators;
    kpi("elevators", `${pct(e.availability)}<small>%</small>`, [`${t("in_service")}<b>${e.in_service}/${e.total}</b>`]);
    $("#kpi-elevators").classList.toggle("alarm", e.total > 0 && e.availability < 0.9);
    const c = o.chargers;
    kpi("charging", `${num(c.kw, 1)}<small>kW${c.cap_kw ? ` / ${num(c.cap_kw)}` : ""}</small>`,
        [`${t("in_use")}<b>${c.charging}/${c.total}</b>`, `${t("kwh_today")}<b>${num(c.kwh_today, 1)}</b> kWh`]);
    const share = c.cap_kw ? c.kw / c.cap_kw : 0;
    const bar = $("#kpi-charging .bar");
    bar.classList.toggle("over", share > 1);
    $("i", bar).style.width = `${Math.min(100, share * 100)}%`;
    return true;
  },

  /** A tile per kind without a panel: its title, online/total, faulted, and the figures its module declares.
   *  Drawn once the overview arrived, whether there is a kind to show or not. */
  tiles(body) {
    if (!overview) return false;
    const kinds = Object.entries(overview.kinds || {}).filter(([kind]) => !HAND_MADE.has(kind));
    patchList(body, kinds.map(([kind, k]) => {
      const figures = Object.entries(k.figures || {}).map(([name, value]) =>
        `<div class="fig" data-figure="${esc(name)}"><span>${esc(figureLabel(name))}</span><b>${figureValue(value)}</b></div>`);
      return `<div class="tile ${k.faulted ? "alarm" : ""}" data-kind="${esc(kind)}">`
        + `<div class="head"><h3>${esc(kindTitle(kind))}</h3><div class="big">${num(k.online)}<small>/ ${num(k.total)}</small></div></div>`
        + `<div class="fig ${k.faulted ? "bad" : ""}" data-figure="faulted"><span>${t("t_faulted")}</span><b>${num(k.faulted)}</b></div>`
        + figures.join("") + "</div>";
    }));
    return true;
  },

  elevators(body) {
    const cars = [...devices.values()].filter((d) => d.kind === "elevator");
    const rank = (d) => (faultsOf(d).length ? 0 : !d.online ? 1 : d.telemetry.mode && d.telemetry.mode !== "normal" ? 2 : 3);
    cars.sort((a, b) => rank(a) - rank(b) || byName(a, b));
    // Big tiles while they fit, compact ones for a larger estate; beyond that faulted cars come first.
    const {w, h} = size(body);
    const fitsBig = Math.floor((w + 8) / 108) * Math.floor((h + 8) / 94);
    body.classList.toggle("compact", cars.length > fitsBig);
    const fits = cars.length > fitsBig ? Math.floor((w + 6) / 82) * Math.floor((h + 6) / 72) : fitsBig;
    const shown = cars.length > fits ? cars.slice(0, fits - 1) : cars;
    patchList(body, shown.map((d) => {
      const tm = d.telemetry, faults = faultsOf(d);
      const mode = tm.mode && tm.mode !== "normal";
      const cls = faults.length ? "fault" : !d.online ? "offline" : mode ? "mode" : "";
      const state = faults.length ? faults.map((c) => faultTitle("elevator", c)).join(" · ")
        : !d.online ? t("offline") : mode ? word("mode_", tm.mode) : word("door_", tm.door);
      return `<div class="car ${cls}" data-device="${esc(d.device)}"><div class="name">${esc(deviceName(d))}</div>`
        + `<div class="floor">${tm.floor ?? "–"}<span class="dir">${word("dir_", tm.direction)}</span></div>`
        + `<div class="state">${esc(state)}</div></div>`;
    }).concat(more(cars.length - shown.length)));
    return cars.length > 0;
  },

  gates(body) {
    rows(body, lists.gates, (e) => [
      `<td class="t">${hhmm(e.time)}</td>`, `<td style="width:72px">${esc(e.device)}</td>`,
      `<td class="plate">${esc(maskPlate(e.plate))}</td>`,
      `<td style="width:40px" class="${e.direction === "in" ? "ok" : "info"}">${word("pass_", e.direction)}</td>`,
      `<td style="width:64px">${esc(word("cat_", e.category))}</td>`,
      `<td style="width:70px" class="${e.decision === "allowed" ? "" : "major"}">${esc(word("dec_", e.decision))}</td>`]);
    return lists.gates.length > 0;
  },

  buildings(body) {
    const groups = new Map();
    for (const d of devices.values()) {
      const key = d.building ?? "";
      if (!groups.has(key)) groups.set(key, {building: d.building, devices: []});
      groups.get(key).devices.push(d);
    }
    const sorted = [...groups.values()].sort((a, b) => (a.building == null) - (b.building == null)
      || collator.compare(a.building ?? "", b.building ?? ""));
    for (const g of sorted) {
      g.states = g.devices.map(dotState);
      g.cls = g.states.includes("s-fault") ? "alarm" : g.states.includes("s-warn") ? "warn"
        : g.states.every((x) => x === "s-off") ? "down" : "";
      g.up = g.devices.filter((d) => d.online).length;
      g.name = g.building ? t("building", {b: g.building}) : t("common_area");
    }
    const {w, h} = size(body);
    // Every device as a dot while that fits; a large estate shows one tile a building, worst state first.
    const cols = Math.max(1, Math.floor((w + 8) / 158));
    let height = 0;
    for (let i = 0; i < sorted.length; i += cols) {
      height += 34 + 15 * Math.ceil(Math.max(...sorted.slice(i, i + cols).map((g) => g.devices.length)) / 9);
    }
    const compact = height > h;
    body.classList.toggle("compact", compact);
    if (!compact) {
      patchList(body, sorted.map((g) => {
        const dots = g.devices.map((d, i) => `<i class="dot k-${d.kind} ${g.states[i]}" title="${esc(kindTitle(d.kind))} ${esc(deviceName(d))}"></i>`);
        return `<div class="bld ${g.cls}"><h4>${esc(g.name)}<span>${g.up}/${g.devices.length}</span></h4><div class="dots">${dots.join("")}</div></div>`;
      }));
      return sorted.length > 0;
    }
    const fits = Math.floor((w + 4) / 40) * Math.floor((h + 4) / 28);
    const worst = {alarm: 0, warn: 1, down: 2, "": 3};
    const shown = sorted.length > fits ? [...sorted].sort((a, b) => worst[a.cls] - worst[b.cls]).slice(0, fits - 2) : sorted;
    patchList(body, shown.map((g) => `<div class="bt ${g.cls}" title="${esc(g.name)} · ${g.up}/${g.devices.length}">`
      + `${esc(g.building ?? t("common_short"))}</div>`)
      .concat(more(sorted.length - shown.length)));
    return sorted.length > 0;
  },

  alerts(body) {
    const sevRank = {critical: 0, major: 1, minor: 2, info: 3};
    const shown = new Set();   // one line per incident: its first alert in this order stands for it
    const list = [...alerts.values()].sort((a, b) => (a.state === "open" ? 0 : 1) - (b.state === "open" ? 0 : 1)
      || sevRank[a.severity] - sevRank[b.severity] || b.opened_at.localeCompare(a.opened_at))
      .filter((a) => { const i = incidentOf.get(a.id); return !i || (!shown.has(i.id) && shown.add(i.id)); });
    $("[data-panel=alerts] .count").textContent = list.length ? `${list.filter((a) => a.state === "open").length} / ${list.length}` : "";
    const canAck = me.role !== "viewer";
    const fits = Math.max(1, Math.floor((size(body).h + 6) / 58));
    patch(body, list.length ? list.slice(0, fits).map((a) => {
      const device = devices.get(`${a.site}/${a.kind}/${a.device}`);
      const where = [kindTitle(a.kind), device ? deviceName(device) : a.device, device?.building && t("building", {b: device.building})];
      const i = incidentOf.get(a.id);   // its incident is taken as a whole: every open alert of it, one line
      const action = a.state === "open" && canAck
        ? `<button class="act" data-ack="${esc(a.id)}"${i ? ` data-incident="${esc(i.id)}"` : ""}>${t("ack")}</button>`
        : a.state === "acknowledged" ? `<span class="act dim">${t("acked_by")} ${esc(i?.people.join("、") || a.acknowledged_by || "")}</span>` : "<span></span>";
      return `<div class="alert ${a.severity} ${a.state}" data-alert="${esc(a.id)}"><i class="sev ${a.severity}"></i>`
        + `<div class="title"><span class="tag ${a.severity}">${t("sev_" + a.severity)}</span> ${esc(lang === "zh" ? a.title : a.title_en || a.title)}</div>`
        + action + `<div class="meta">${esc(where.filter(Boolean).join(" · "))} · ${hhmm(a.opened_at)} · ${since(a.opened_at)}`
        + `${a.occurrences > 1 ? ` · ×${a.occurrences}` : ""}`
        + `${i?.parts.length > 1 ? ` · ${t("incident_parts", {n: i.parts.length})}` : ""}</div></div>`;
    }).join("") : `<div class="empty ok">${t("no_alerts")}</div>`);
    return true;
  },

  chargers(body) {
    const evs = [...devices.values()].filter((d) => d.kind === "charger").sort(byName);
    const status = (d) => !d.online ? "unavailable" : faultsOf(d).length ? "faulted" : d.telemetry.status || "unavailable";
    const rank = (d) => ({faulted: 0, charging: 1}[status(d)] ?? 2);
    evs.sort((a, b) => rank(a) - rank(b));   // stable: by name within faulted, charging, the rest
    const fits = Math.floor((size(body).w + 5) / 63) * Math.floor((size(body).h + 5) / 45) || evs.length;
    const shown = evs.length > fits ? evs.slice(0, fits - 1) : evs;
    const plan = (d) => allocation.get(`${d.site}/${d.device}`);   // the allocator's limit and why, if it steers it
    // the car's progress: its state of charge, from the charger's telemetry or the allocator's row
    const soc = (d) => d.telemetry.status === "charging" ? d.telemetry.soc_pct ?? plan(d)?.soc_pct ?? null : null;
    const why = (a) => a ? ` · ${t("limit")} ${num(a.limit_kw, 1)} kW · ${lang === "zh" ? a.reason.zh : a.reason.en}` : "";
    patchList(body, shown.map((d) => `<div class="ev st-${esc(status(d))}${plan(d) ? ` al-${esc(plan(d).state)}` : ""}" data-device="${esc(d.device)}" title="${esc(word("st_", status(d)) + why(plan(d)) + (soc(d) != null ? ` · SoC ${num(soc(d))}%` : ""))}">`
      + `${esc(deviceName(d))}<b>${num(d.telemetry.power_kw, 1)}${plan(d) ? `<small class="lim">/${num(plan(d).limit_kw, 1)}</small>` : ""}</b>`
      + (soc(d) != null ? `<i class="soc" style="width:${Math.max(0, Math.min(100, soc(d)))}%"></i>` : "") + "</div>")
      .concat(more(evs.length - shown.length)));
    return evs.length > 0;
  },

  access(body) {
    rows(body, lists.access, (e) => e.type === "fault"
      ? [`<td class="t">${hhmm(e.time)}</td>`, `<td>${esc(e.device)}</td>`, `<td class="critical" colspan="2">${esc(faultTitle("access", e.code))}</td>`]
      : [`<td class="t">${hhmm(e.time)}</td>`, `<td>${esc(e.device)}</td>`, `<td style="width:52px">${esc(word("m_", e.method))}</td>`,
         `<td style="width:150px" class="${e.result === "granted" ? "ok" : "major"}">${esc(word("r_", e.result))}${e.reason ? " · " + esc(word("why_", e.reason)) : ""}</td>`]);
    return lists.access.length > 0;
  },

  cameras(body) {
    const alarming = new Set(["high_altitude_throw", "fire", "smoke", "intrusion", "ebike_in_elevator", "fall", "fire_lane_blocked"]);
    rows(body, lists.cameras, (e) => [
      `<td class="t">${hhmm(e.time)}</td>`,
      `<td class="${alarming.has(e.label) ? "critical" : ""}">${esc(word("l_", e.label))}</td>`,
      `<td class="dim">${esc(e.zone || e.device)}</td>`,
      `<td style="width:46px">${webLink(e.snapshot) ? `<a href="${esc(e.snapshot)}" target="_blank" rel="noopener noreferrer">${t("snapshot")}</a>` : ""}</td>`]);
    return lists.cameras.length > 0;
  },

  traffic() {
    if (!series.traffic) return false;
    chart("traffic").setOption({
      legend: legend([t("today_in"), t("today_out"), t("yest_in")]),
      xAxis: {...axisX(), data: series.traffic.in.map(([time]) => hour(time))}, yAxis: axisY(),
      series: [
        line(t("today_in"), series.traffic.in.map(([, n]) => n), "#2fe0a0", true),
        line(t("today_out"), series.traffic.out.map(([, n]) => n), "#5ab0ff", true),
        {...line(t("yest_in"), series.yesterday.in.map(([, n]) => n), "#7d9cc0"), lineStyle: {type: "dashed", width: 1.5}},
      ]});
    return true;
  },

  power() {
    if (!series.power) return false;
    const cap = overview?.chargers?.cap_kw;
    chart("power").setOption({
      legend: {show: false},
      xAxis: {...axisX(), data: series.power.kw.map(([time]) => hhmm(time))}, yAxis: {...axisY(), name: "kW", max: cap ? (v) => Math.max(v.max, cap * 1.1) : null},
      series: [{...line(t("kw"), series.power.kw.map(([, kw]) => kw), "#f5d547", true),
        markLine: cap ? {symbol: "none", silent: true, data: [
          {yAxis: cap, label: {formatter: `${t("cap_line")} ${cap} kW`, color: "#ff4d5e", position: "insideEndTop"},
           lineStyle: {color: "#ff4d5e", type: "dashed"}},
          // the allocator's plan now: what it lets the chargers draw together, beside what they drew
          ...(allocatedKw != null ? [{yAxis: allocatedKw, label: {formatter: `${t("plan_line")} ${num(allocatedKw, 1)} kW`,
            color: "#2fe0a0", position: "insideEndBottom"}, lineStyle: {color: "#2fe0a0", type: "dotted"}}] : [])]} : undefined}]});
    return true;
  },

  alertdays() {
    if (!series.days) return false;
    const colours = {critical: "#ff4d5e", major: "#ff9b3d", minor: "#f5d547", info: "#5ab0ff"};
    chart("alertdays").setOption({
      legend: legend(Object.keys(colours).map((s) => t("sev_" + s))),
      xAxis: {...axisX(), data: series.days.days.map((d) => dayLabel(d.day))}, yAxis: axisY(),
      series: Object.entries(colours).map(([s, colour]) => ({name: t("sev_" + s), type: "bar", stack: "all", barWidth: "60%",
        itemStyle: {color: colour}, data: series.days.days.map((d) => d[s])}))});
    return true;
  },
};

/** A figure's label: the page's word for it when it has one, else its name made readable (`open_leaks`: open leaks). */
const figureLabel = (name) => I18N[lang]["f_" + name] ?? I18N.zh["f_" + name] ?? name.replace(/_/g, " ");
const figureValue = (v) => v == null ? "–" : Number(v).toLocaleString("en-US", {maximumFractionDigits: 2});
const faultsOf = (d) => Object.keys(d.open_faults || {});
function dotState(d) {
  if (!d.online) return "s-off";
  if (faultsOf(d).some((c) => ["critical", "major"].includes(catalog.kinds?.[d.kind]?.faults?.[c]?.severity))) return "s-fault";
  return faultsOf(d).length ? "s-warn" : "";
}
/** The "+N more" tile after what fits, as a list to append (empty when everything fits). */
const more = (hidden) => hidden > 0 ? [`<div class="more">${t("more", {n: hidden})}</div>`] : [];
function kpi(id, big, parts) {
  const el = $(`#kpi-${id}`);
  $(".big", el).innerHTML = big;
  $(".row", el).innerHTML = parts.map((p) => `<span>${p}</span>`).join("");
}
function rows(body, list, cells) {
  const fits = Math.max(1, Math.floor(size(body).h / 30));
  patch(body.firstElementChild, list.length ? list.slice(0, fits).map((e) => {
    const html = `<tr class="${e.fresh ? "fresh" : ""}">${cells(e).join("")}</tr>`;
    e.fresh = false;  // highlight a new row once
    return html;
  }).join("") : `<tr><td class="empty">${t("none")}</td></tr>`);
}
/** Replace an element's content only when it changed: rebuilding the DOM is the expensive part. */
function patch(el, html) {
  if (el._html !== html) { el.innerHTML = html; el._html = html; }
}
/** The same for a list of one-element HTML strings, child by child: a car changing floor redraws
 *  that car, not the 2,000 devices around it. */
function patchList(el, items) {
  while (el.children.length > items.length) el.lastElementChild.remove();
  items.forEach((html, i) => {
    const old = el.children[i];
    if (old && old._html === html) return;
    const template = document.createElement("template");
    template.innerHTML = html;
    const fresh = template.content.firstElementChild;
    fresh._html = html;
    if (old) old.replaceWith(fresh); else el.appendChild(fresh);
  });
}
/** Panel sizes on the fixed 1920x1080 canvas, measured once: reading them between DOM writes would
 *  force a layout per panel. */
const sizes = new Map();
function size(el) {
  if (!sizes.has(el)) sizes.set(el, {w: el.clientWidth, h: el.clientHeight});
  return sizes.get(el);
}

// ---------------------------------------------------------------- charts
const charts = {};
function chart(name) {
  if (!charts[name]) {
    charts[name] = echarts.init(document.getElementById(`chart-${name}`), null, {renderer: "canvas"});
    charts[name].setOption({
      backgroundColor: "transparent", animationDuration: 600, animationDurationUpdate: 0,  // updates draw at once
      textStyle: {fontFamily: getComputedStyle(document.body).fontFamily, color: "#7d9cc0"},
      grid: {left: 40, right: 14, top: 30, bottom: 22},
      tooltip: {trigger: "axis", backgroundColor: "rgba(10,32,58,0.95)", borderColor: "#17406a", textStyle: {color: "#dcebff"}},
    });
  }
  return charts[name];
}
const legend = (names) => ({data: names, top: 0, right: 0, itemWidth: 14, itemHeight: 8, textStyle: {color: "#7d9cc0", fontSize: 12}});
const axisX = () => ({type: "category", boundaryGap: false, axisLine: {lineStyle: {color: "#17406a"}}, axisTick: {show: false},
                      axisLabel: {color: "#7d9cc0", fontSize: 11}});
const axisY = () => ({type: "value", minInterval: 1, splitLine: {lineStyle: {color: "rgba(23,64,106,0.5)"}}, axisLabel: {color: "#7d9cc0", fontSize: 11}});
function line(name, data, colour, area = false) {
  return {name, type: "line", data, smooth: true, showSymbol: false, lineStyle: {width: 2, color: colour}, itemStyle: {color: colour},
    areaStyle: area ? {color: new echarts.graphic.LinearGradient(0, 0, 0, 1, [{offset: 0, color: colour + "66"}, {offset: 1, color: colour + "00"}])} : undefined};
}

// ---------------------------------------------------------------- render loop
function render() {
  if (!dirty.size || $("#stage").classList.contains("hidden")) return;  // hidden panels measure 0
  const started = performance.now();
  if (!sizes.size) for (const body of document.querySelectorAll("[data-panel] .body")) size(body);  // read before writing
  const now = performance.now();
  for (const panel of [...dirty]) {
    // A chart moved by live events (each passage counts in today's traffic) is redrawn at most every few
    // seconds: an hourly chart gains nothing from two redraws a second, and each costs tens of ms at 2,000 devices.
    if (filled.has(panel) && now - (drawnAt[panel] || 0) < (CHART_EVERY_MS[panel] || 0)) continue;
    dirty.delete(panel);
    drawnAt[panel] = now;
    const section = $(`[data-panel=${panel}]`);
    const panelStarted = performance.now();
    try {
      const ok = RENDER[panel]($(".body", section));
      window.screenState.panelMs[panel] = (window.screenState.panelMs[panel] || 0) + performance.now() - panelStarted;
      if (ok) { filled.add(panel); section.dataset.filled = "1"; window.screenState.filled = [...filled]; }
    } catch (error) {
      window.screenState.errors.push(`${panel}: ${error}`);
      console.error(panel, error);
    }
  }
  const took = performance.now() - started;
  const st = window.screenState;
  st.renders++; st.renderMsTotal += took; st.renderMsMax = Math.max(st.renderMsMax, took);
  if (!window.screenState.ready && filled.size === Object.keys(RENDER).length) window.screenState.ready = true;
}

function fit() {
  const scale = Math.min(innerWidth / 1920, innerHeight / 1080);
  $("#canvas").style.transform = `scale(${scale})`;
  sizes.clear();
  for (const c of Object.values(charts)) c.resize();
}

// ---------------------------------------------------------------- alert actions
async function acknowledge(id, incident) {
  try {
    const path = incident ? `/api/incidents/${encodeURIComponent(incident)}/ack` : `/api/alerts/${encodeURIComponent(id)}/ack`;
    await api(path, {method: "POST", body: "{}"});
    toast(t(incident ? "ack_incident_done" : "ack_done"));
    await loadAlerts();
  } catch (error) {
    toast(`${t("ack_failed")}: ${error.message}`);
  }
}
let toastTimer = 0;
function toast(text) {
  const el = $("#toast");
  el.textContent = text;
  el.classList.add("show");
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => el.classList.remove("show"), 3000);
}

// ---------------------------------------------------------------- start
function failed(error) {
  if (error instanceof Unauthorised) { showLogin(t("bad_token")); return; }
  window.screenState.errors.push(String(error));
  console.warn(error);
}
let timers = [];
async function start() {
  try {
    me = await api("/api/me");   // a wrong token stays on the login form
  } catch (error) {
    if (error instanceof Unauthorised) { sessionStorage.removeItem("smarthub-token"); showLogin(t("bad_token")); return; }
  }
  sessionStorage.setItem("smarthub-token", token);
  if (params.has("token")) {   // a kiosk link: keep the token out of the address bar once read
    const url = new URL(location.href);
    url.searchParams.delete("token");
    history.replaceState(null, "", url);
  }
  $("#login").classList.add("hidden");
  $("#stage").classList.remove("hidden");
  fit();
  connect();
  timers.forEach(clearInterval);
  const every = (ms, load) => setInterval(() => { if (link === "live") load().catch(failed); }, ms);
  checkHealth();
  timers = [setInterval(checkHealth, HEALTH_MS),
            every(OVERVIEW_MS, loadOverview), every(OVERVIEW_MS, loadCharging), every(SERIES_MS, loadSeries), every(DEVICES_MS, loadDevices),
            every(30_000, async () => mark("alerts"))];   // "n minutes ago"
}

$("#login-form").onsubmit = (e) => { e.preventDefault(); token = $("#token").value.trim(); if (token) start(); };
$("#logout").onclick = () => { sessionStorage.removeItem("smarthub-token"); token = ""; showLogin(); };
for (const b of document.querySelectorAll(".lang-toggle")) b.onclick = toggleLanguage;
$("[data-panel=alerts] .body").addEventListener("click", (e) => {
  const button = e.target.closest("[data-ack]");
  if (button) { button.disabled = true; acknowledge(button.dataset.ack, button.dataset.incident); }
});
addEventListener("resize", fit);
setInterval(render, RENDER_MS);
setInterval(tickClock, 1000);
applyLanguage();
if (token) start(); else showLogin();
