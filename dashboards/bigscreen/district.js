"use strict";
// The district wall (街道联动指挥中心): every community of one district as a tile, worst first.
//
// Data path: GET /api/district/{slug} gives the whole picture, ranked by the hub (the score is the hub's, so
// every wall ranks alike). It is asked for every DISTRICT_MS, and soon after WS /api/live says an alert or a
// work order changed (at most once a REFRESH_SOON_MS), so a trapped passenger moves its community to the top
// within seconds. The hub shares answers for its screen cache's 2 s, so many walls cost one computation.

const DISTRICT_MS = 5_000;      // the whole district again: device counts and gauges move slowly
const REFRESH_SOON_MS = 1_000;  // after a live alert or order: at most one extra request a second
const HEALTH_MS = 3_000;        // /api/health: is the hub still receiving? (a stale-data banner if not)
const RANKED = 12;              // communities in the ranking chart
const TILE_MAX_PX = 190;        // a few communities get tiles this high, not the whole wall

Object.assign(I18N.zh, {
  d_title: "街道联动指挥中心", d_subtitle: "社区态势 · 风险优先",
  k_communities: "社区", k_overdue: "超时工单", k_hub: "平台告警", k_devices: "设备在线", k_alerts: "未处理告警",
  p_communities: "社区态势（风险由高到低）", p_ranking: "风险指数排行", p_severity: "告警构成",
  c_online: "在线", c_overdue: "超时工单", c_score: "风险", c_acked: "已受理", c_alerts: "告警",
  st_ok: "正常", st_major: "关注", st_critical: "紧急", st_down: "离线多",
  no_district: "未找到街道 {d}", no_communities: "该街道下暂无社区", choose_district: "请在地址中指定街道：?district=…",
  hub_ok: "平台运行正常", communities_unit: "个",
  score_hint: "风险指数 = 200×紧急 + 20×重要 + 4×一般 + 1×提示（已受理的减半）+ 10×超时工单 + 50×离线比例 + 30×各项指标压力（电梯停运、充电超限）。点击社区进入该社区大屏。",
});
Object.assign(I18N.en, {
  d_title: "District Joint Command Center", d_subtitle: "Communities · worst first",
  k_communities: "Communities", k_overdue: "Overdue orders", k_hub: "Hub alerts", k_devices: "Devices online", k_alerts: "Open alerts",
  p_communities: "Communities (worst first)", p_ranking: "Risk ranking", p_severity: "Alerts by severity",
  c_online: "online", c_overdue: "overdue", c_score: "risk", c_acked: "acked", c_alerts: "alerts",
  st_ok: "OK", st_major: "Attention", st_critical: "Critical", st_down: "Mostly offline",
  no_district: "No district {d}", no_communities: "No community in this district", choose_district: "Name a district in the address: ?district=…",
  hub_ok: "Hub healthy", communities_unit: "",
  score_hint: "Risk = 200×critical + 20×major + 4×minor + 1×info (acknowledged count half) + 10×overdue order + 50×share offline + 30×each gauge's strain (elevators out, charging over cap). Click a community to open its wall.",
});

const SEVERITIES = ["critical", "major", "minor", "info"];
const SEV_COLOURS = {critical: "#ff4d5e", major: "#ff9b3d", minor: "#f5d547", info: "#5ab0ff"};

// ---------------------------------------------------------------- language (as the community wall)
const named = (x) => (lang === "zh" ? x.zh : x.en) || x.zh || x.slug || x.site;
function applyLanguage() {
  document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
  document.title = t("d_title");
  for (const el of document.querySelectorAll("[data-t]")) {
    const extra = el.querySelector(".legend");
    el.textContent = t(el.dataset.t);
    if (extra) el.appendChild(extra);
  }
  for (const el of document.querySelectorAll("[data-t-ph]")) el.placeholder = t(el.dataset.tPh);
  for (const el of document.querySelectorAll(".lang-toggle")) el.textContent = t("lang");
  $("[data-panel=communities] .legend").innerHTML = [["ok", "var(--ok)"], ["major", "var(--major)"], ["critical", "var(--critical)"], ["down", "var(--off)"]]
    .map(([s, c]) => `<i class="sw" style="background:${c}"></i>${esc(t("st_" + s))}`).join("");
  $("#score-hint").textContent = t("score_hint");
  tickClock();
  setLink(link);
  draw();
}

// ---------------------------------------------------------------- formatting

// ---------------------------------------------------------------- state
let token = params.get("token") || sessionStorage.getItem("smarthub-token") || "";
const slug = params.get("district");
let catalog = {kinds: {}};
let answer = null;          // the last GET /api/district/{slug}
let missing = false;        // 404: no such district
let link = "connecting";
// What tests read: readiness, the order drawn, how often it was refreshed, what failed.
window.districtState = {ready: false, order: [], refreshes: 0, stale: false, staleSince: null, errors: []};

class NotFound extends Error {}
async function api(path) {
  const response = await fetch(path, {headers: {Authorization: `Bearer ${token}`}});
  if (response.status === 401) throw new Unauthorised();
  if (response.status === 404) throw new NotFound(path);
  if (!response.ok) throw new Error(`${path}: ${response.status} ${await response.text()}`);
  return response.json();
}

let loading = null;
async function loadDistrict() {
  if (!slug) { missing = true; draw(); return; }
  if (loading) return loading;        // one request at a time; a refresh asked meanwhile rides on it
  loading = (async () => {
    try {
      answer = await api(`/api/district/${encodeURIComponent(slug)}`);
      missing = false;
      window.districtState.refreshes++;
    } catch (error) {
      if (!(error instanceof NotFound)) throw error;
      missing = true;
    } finally {
      loading = null;
    }
    draw();
  })();
  return loading;
}
let soon = 0;
function refreshSoon() {
  if (soon) return;
  soon = setTimeout(() => { soon = 0; loadDistrict().catch(failed); }, REFRESH_SOON_MS);
}

// ---------------------------------------------------------------- live
let socket = null;
let backoff = 1000;
function connect() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  socket = new WebSocket(`${scheme}://${location.host}/api/live?token=${encodeURIComponent(token)}`);
  socket.onopen = () => {
    backoff = 1000;
    Promise.all([api("/api/catalog").then((c) => { catalog = c; }), loadDistrict()])
      .then(() => setLink("live")).catch(failed);
  };
  socket.onmessage = (m) => {
    const message = JSON.parse(m.data);
    if (message.type === "resync" || message.type === "alert" || message.type === "order") refreshSoon();
  };
  socket.onclose = (e) => {
    socket = null;
    if (e.code === 4401) { showLogin(t("bad_token")); return; }
    setLink("reconnecting");
    setTimeout(connect, backoff);
    backoff = Math.min(backoff * 2, 10_000);
  };
}

// ---------------------------------------------------------------- stale data (the banner; common.js keeps the state)
const hubFault = (code) => catalog.kinds?.hub?.faults?.[code]?.[lang] ?? code;
function showStale() {
  const el = $("#stale");
  const lost = link === "reconnecting";
  const since = [hubStale?.since, lost ? linkLostAt : null].filter(Boolean).sort()[0] || null;
  window.districtState.stale = since !== null;
  window.districtState.staleSince = since;
  el.classList.toggle("hidden", since === null);
  if (since === null) return;
  const at = new Date(since);
  const when = `${dayLabel(since)} ${at.toLocaleTimeString("en-GB", {timeZone: TZ, hour12: false})}`;
  const why = [...(hubStale?.reasons || []).map(hubFault), lost ? t("stale_link") : null];
  el.innerHTML = `⚠ ${esc(t("stale", {t: when}))}<small>${esc([t("stale_hint"), ...why.filter(Boolean)].join(" · "))}</small>`;
}

// ---------------------------------------------------------------- drawing
const openAlerts = (c) => SEVERITIES.reduce((n, s) => n + c.alerts.open[s], 0);
/** The tile's colour: a critical alert, then a major one or an order overdue, then mostly offline, then a
 *  strained gauge (elevators out of service, charging over the cap). */
function status(c) {
  if (c.alerts.open.critical) return "critical";
  if (c.alerts.open.major || c.overdue_orders) return "major";
  if (c.devices.total && c.devices.online / c.devices.total < 0.5) return "down";
  if (Object.values(c.gauges).some((g) => g.strain > 0)) return "major";
  return "ok";
}
function kpi(id, big, row) {
  $(`#kpi-${id} .big`).innerHTML = big;
  $(`#kpi-${id} .row`).innerHTML = row.map((r) => `<span>${r}</span>`).join("");
}
function gaugeHtml(name, g) {
  const text = g.of == null ? `${num(g.value, 1)}${g.unit ? ` ${esc(g.unit)}` : ""}`
    : g.unit ? `${num(g.value, 1)}/${num(g.of, 0)} ${esc(g.unit)}` : `${pct(g.share)}%`;
  const width = g.share == null ? 0 : Math.min(100, g.share * 100);
  return `<div class="gauge${g.strain > 0 ? " strained" : ""}" data-gauge="${esc(name)}"><span>${esc(lang === "zh" ? g.zh : g.en)}</span>`
    + `<span class="g-bar"><i style="width:${width}%"></i></span><b>${text}</b></div>`;
}
function tileHtml(c) {
  const url = `/?site=${encodeURIComponent(c.site)}${lang !== "zh" ? `&lang=${lang}` : ""}`;
  // only the severities it has: a line that fits the smallest tile
  const present = SEVERITIES.filter((s) => c.alerts.open[s]);
  const sev = present.length ? present.map((s) => `<span class="${s}">${esc(t("sev_" + s))}<b>${c.alerts.open[s]}</b></span>`).join("")
    : `<span class="zero">${esc(t("c_alerts"))}<b>0</b></span>`;
  const acked = SEVERITIES.reduce((n, s) => n + c.alerts.acknowledged[s], 0);
  return `<a class="ctile s-${status(c)}" href="${url}" data-site="${esc(c.site)}" title="${esc(named(c))}">`
    + `<div class="top"><span class="rank">#${c.rank}</span><span class="name">${esc(named(c))}</span>`
    + `<span class="score">${num(c.score, 0)}<small>${esc(t("c_score"))}</small></span></div>`
    + `<div class="line"><span>${esc(t("c_online"))}<b>${num(c.devices.online)}/${num(c.devices.total)}</b></span>`
    + `<span class="${c.overdue_orders ? "major" : "zero"}">${esc(t("c_overdue"))}<b>${c.overdue_orders}</b></span>`
    + (acked ? `<span>${esc(t("c_acked"))}<b>${acked}</b></span>` : "") + `</div>`
    + `<div class="line">${sev}</div>`
    + Object.entries(c.gauges).map(([name, g]) => gaugeHtml(name, g)).join("")
    + `</a>`;
}
let gridHeight = 0;
function drawTiles() {
  const grid = $("#communities");
  if (missing) {
    grid.innerHTML = `<div class="empty">${esc(slug ? t("no_district", {d: slug}) : t("choose_district"))}</div>`;
    return;
  }
  const list = answer.communities;
  if (!list.length) { grid.innerHTML = `<div class="empty">${esc(t("no_communities"))}</div>`; return; }
  const cols = Math.max(3, Math.ceil(Math.sqrt(list.length * 1.5)));
  const rows = Math.ceil(list.length / cols);
  gridHeight = gridHeight || grid.clientHeight;     // measured once: the canvas never changes size
  grid.style.setProperty("--cols", cols);
  grid.style.setProperty("--row-h", `${Math.min(TILE_MAX_PX, Math.floor((gridHeight - 10 * (rows - 1)) / rows))}px`);
  grid.classList.toggle("dense", list.length > 20);
  grid.innerHTML = list.map(tileHtml).join("");
}
function drawKpis() {
  const d = answer.totals;
  const open = SEVERITIES.reduce((n, s) => n + d.alerts.open[s], 0);
  const worst = answer.communities[0];
  kpi("communities", `${num(d.communities)}<small>${esc(t("communities_unit"))}</small>`,
      ["critical", "major", "down"].map((s) => `${esc(t("st_" + s))}<b>${answer.communities.filter((c) => status(c) === s).length}</b>`));
  kpi("devices", `${num(d.devices.online)}<small>/ ${num(d.devices.total)}</small>`,
      [`${esc(t("t_faulted"))}<b>${num(d.devices.faulted)}</b>`]);
  kpi("alerts", `<span class="${d.alerts.open.critical ? "critical" : open ? "major" : "ok"}">${num(open)}</span>`
      + `<small>${esc(t("acked"))} ${SEVERITIES.reduce((n, s) => n + d.alerts.acknowledged[s], 0)}</small>`,
      SEVERITIES.map((s) => `<span class="${s}">${esc(t("sev_" + s))}</span><b>${d.alerts.open[s]}</b>`));
  $("#kpi-alerts").classList.toggle("alarm", d.alerts.open.critical > 0);
  kpi("overdue", `<span class="${d.overdue_orders ? "major" : "ok"}">${num(d.overdue_orders)}</span>`,
      worst ? [`#1 <b>${esc(named(worst))}</b>`] : []);
  const hub = answer.hub_alerts;
  const hubOpen = SEVERITIES.reduce((n, s) => n + hub.open[s] + hub.acknowledged[s], 0);
  kpi("hub", `<span class="${hubOpen ? "major" : "ok"}">${num(hubOpen)}</span>`, hubOpen ? [] : [esc(t("hub_ok"))]);
}
const charts = {};
function chart(name) {
  if (!charts[name]) {
    charts[name] = echarts.init(document.getElementById(`chart-${name}`), null, {renderer: "canvas"});
    charts[name].setOption({backgroundColor: "transparent", animationDurationUpdate: 300,
      textStyle: {fontFamily: getComputedStyle(document.body).fontFamily, color: "#7d9cc0"},
      tooltip: {backgroundColor: "rgba(10,32,58,0.95)", borderColor: "#17406a", textStyle: {color: "#dcebff"}}});
  }
  return charts[name];
}
const STATUS_COLOURS = {critical: "#ff4d5e", major: "#ff9b3d", ok: "#2fe0a0", down: "#56677d"};
function drawCharts() {
  const top = answer.communities.slice(0, RANKED).reverse();   // the worst at the top of the bars
  chart("ranking").setOption({
    grid: {left: 8, right: 40, top: 6, bottom: 6, containLabel: true},
    tooltip: {trigger: "axis", axisPointer: {type: "shadow"}},
    xAxis: {type: "value", splitLine: {lineStyle: {color: "rgba(23,64,106,0.5)"}}, axisLabel: {color: "#7d9cc0", fontSize: 11}},
    yAxis: {type: "category", data: top.map(named), axisLine: {lineStyle: {color: "#17406a"}}, axisTick: {show: false},
            axisLabel: {color: "#dcebff", fontSize: 12, width: 110, overflow: "truncate"}},
    series: [{type: "bar", name: t("c_score"), barMaxWidth: 16, data: top.map((c) => ({value: c.score, itemStyle: {color: STATUS_COLOURS[status(c)]}})),
              label: {show: true, position: "right", color: "#dcebff", fontSize: 11, formatter: (p) => num(p.value, 0)}}],
  }, {replaceMerge: ["series", "yAxis"]});
  const totals = answer.totals.alerts.open;
  chart("severity").setOption({
    tooltip: {trigger: "item"},
    legend: {bottom: 0, itemWidth: 12, itemHeight: 8, textStyle: {color: "#7d9cc0", fontSize: 12}},
    series: [{type: "pie", radius: ["42%", "68%"], center: ["50%", "44%"], label: {color: "#dcebff", formatter: "{b} {c}"},
              data: SEVERITIES.filter((s) => totals[s]).map((s) => ({name: t("sev_" + s), value: totals[s], itemStyle: {color: SEV_COLOURS[s]}}))}],
  }, {replaceMerge: ["series"]});
}
function draw() {
  if ($("#stage").classList.contains("hidden")) return;
  try {
    $("#district-name").textContent = answer ? named(answer.district) : (slug || "");
    if (!answer && !missing) return;
    drawTiles();
    if (answer && !missing) { drawKpis(); drawCharts(); }
    window.districtState.order = answer && !missing ? answer.communities.map((c) => c.site) : [];
    if (answer || missing) window.districtState.ready = true;
  } catch (error) {
    window.districtState.errors.push(String(error));
    console.error(error);
  }
}
function fit() {
  const scale = Math.min(innerWidth / 1920, innerHeight / 1080);
  $("#canvas").style.transform = `scale(${scale})`;
  for (const c of Object.values(charts)) c.resize();
}

// ---------------------------------------------------------------- start (as the community wall)
function failed(error) {
  if (error instanceof Unauthorised) { showLogin(t("bad_token")); return; }
  window.districtState.errors.push(String(error));
  console.warn(error);
}
let timers = [];
async function start() {
  try {
    await api("/api/me");   // a wrong token stays on the login form
  } catch (error) {
    if (error instanceof Unauthorised) { sessionStorage.removeItem("smarthub-token"); showLogin(t("bad_token")); return; }
  }
  sessionStorage.setItem("smarthub-token", token);   // the community walls the tiles open take it from here
  if (params.has("token")) {
    const url = new URL(location.href);
    url.searchParams.delete("token");
    history.replaceState(null, "", url);
  }
  $("#login").classList.add("hidden");
  $("#stage").classList.remove("hidden");
  fit();
  connect();
  timers.forEach(clearInterval);
  checkHealth();
  timers = [setInterval(checkHealth, HEALTH_MS),
            setInterval(() => { if (link === "live") loadDistrict().catch(failed); }, DISTRICT_MS)];
}

$("#login-form").onsubmit = (e) => { e.preventDefault(); token = $("#token").value.trim(); if (token) start(); };
$("#logout").onclick = () => { sessionStorage.removeItem("smarthub-token"); token = ""; showLogin(); };
for (const b of document.querySelectorAll(".lang-toggle")) b.onclick = toggleLanguage;
addEventListener("resize", fit);
setInterval(tickClock, 1000);
applyLanguage();
if (token) start(); else showLogin();
