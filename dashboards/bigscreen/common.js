"use strict";
// What the community wall (screen.js) and the district wall (district.js) share: the page's address, the
// language (Chinese first, English on the toggle, remembered), and how numbers and times are written.
// A classic script: its top-level names are the pages' globals. Each page defines `applyLanguage()`,
// `showStale()` (what its banner says, and where it records it for the tests), `link` and `socket`.

const TZ = "Asia/Shanghai";     // the community's clock, wherever the browser is
const params = new URLSearchParams(location.search);
const $ = (s, root = document) => root.querySelector(s);
const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c]));

// ---------------------------------------------------------------- language
let lang = params.get("lang") || localStorage.getItem("smarthub-lang") || "zh";
if (!I18N[lang]) lang = "zh";
const t = (key, vars) => {
  let s = I18N[lang][key] ?? I18N.zh[key] ?? key;
  for (const [k, v] of Object.entries(vars || {})) s = s.replace(`{${k}}`, v);
  return s;
};
function toggleLanguage() {
  lang = lang === "zh" ? "en" : "zh";
  localStorage.setItem("smarthub-lang", lang);
  const url = new URL(location.href);
  url.searchParams.set("lang", lang);
  history.replaceState(null, "", url);
  applyLanguage();  // the page's own
}

// ---------------------------------------------------------------- formatting
const clockFmt = () => new Intl.DateTimeFormat(lang === "zh" ? "zh-CN" : "en-GB",
  {timeZone: TZ, year: "numeric", month: "2-digit", day: "2-digit", weekday: "short",
   hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false});
const dayLabel = (iso) => new Date(iso).toLocaleDateString("en-CA", {timeZone: TZ}).slice(5);
const num = (n, digits = 0) => n == null ? "–" : Number(n).toLocaleString("en-US", {maximumFractionDigits: digits, minimumFractionDigits: digits});
const pct = (x) => x == null ? "–" : (x * 100).toFixed(1);
function tickClock() { $("#clock").textContent = clockFmt().format(new Date()); }

class Unauthorised extends Error {}

// ---------------------------------------------------------------- link and stale data
// The wall must never look live when it is not: a banner with since when, while the hub says ingest is
// not receiving (GET /api/health is 503), or the hub cannot be reached, or our own WebSocket is down.
let hubStale = null;                       // {since, reasons} while the hub is not receiving
let linkLostAt = null;
function setLink(state) {
  if (state === "reconnecting" && link !== "reconnecting") linkLostAt = new Date().toISOString();
  link = state;
  const el = $("#link");
  el.className = "link-state " + ({live: "live", reconnecting: "down"}[state] || "");
  $("b", el).textContent = t(state);
  showStale();
}
async function checkHealth() {
  try {
    const response = await fetch("/api/health", {cache: "no-store"});
    const health = await response.json();
    hubStale = health.receiving ? null : {since: health.since, reasons: health.reasons};
  } catch (error) {                        // no answer at all: stale since the first miss
    hubStale = {since: hubStale?.since || new Date().toISOString(), reasons: []};
  }
  showStale();
}
function showLogin(message = "") {
  if (socket) { socket.onclose = null; socket.close(); socket = null; }
  $("#stage").classList.add("hidden");
  $("#login").classList.remove("hidden");
  $("#login-error").textContent = message;
  $("#token").focus();
}
