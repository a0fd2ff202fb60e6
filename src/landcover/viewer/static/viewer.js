// landcover view: the maps of one folder (or two, side by side) over an optional true-colour base.
// Tiles and legends come from this server; nothing from the internet.
"use strict";

const state = { sets: [], maps: [], overlays: [], bases: [], layer: null, loaded: 0, pending: 0 };
window.viewer = state;  // for the browser tests: state.loaded counts tile loads, state.lastQuery the last click

function el(tag, attrs = {}, text) {
  const e = document.createElement(tag);
  Object.entries(attrs).forEach(([k, v]) => e.setAttribute(k, v));
  if (text !== undefined) e.textContent = text;
  return e;
}

function legendFor(layer) {
  const box = document.getElementById("legend");
  box.innerHTML = "";
  // one legend for every map shown: the categories of all of them
  const found = state.sets.map(s => s.layers.find(l => l.key === layer)).filter(Boolean);
  const info = found.length ? { ...found[0], legend: [] } : null;
  const seen = new Set();
  found.forEach(l => l.legend.forEach(item => { if (!seen.has(item.code)) { seen.add(item.code); info.legend.push(item); } }));
  if (info && !info.ramp) info.legend.sort((a, b) => a.code - b.code);
  box.appendChild(el("h3", {}, info ? info.title : layer));
  if (info && info.ramp) {
    const stops = info.legend.map(s => s.colour).join(", ");
    const ramp = el("div", { class: "ramp", style: `background: linear-gradient(to right, ${stops})` });
    box.appendChild(ramp);
    box.appendChild(el("div", {}, info.legend.map(s => s.name).join("  ...  ")));
  } else if (info) {
    info.legend.forEach(item => {
      const row = el("div", { class: "legend-item", "data-code": item.code });
      row.appendChild(el("span", { class: "swatch", style: `background:${item.colour}` }));
      row.appendChild(document.createTextNode(`${item.code}  ${item.name}`));
      box.appendChild(row);
    });
  }
  state.sets.forEach(s => {
    const model = s.model ? `${s.model.name || ""} version ${s.model.version || "?"}` : "unknown";
    box.appendChild(el("p", {}, `${s.name}: model ${model}`));
    s.warnings.forEach(w => box.appendChild(el("p", { class: "warning" }, w)));
  });
}

function showLayer(layer) {
  state.layer = layer;
  state.overlays.forEach((overlay, k) => {
    if (overlay) state.maps[k].removeLayer(overlay);
    const has = state.sets[k].layers.some(l => l.key === layer);
    state.overlays[k] = has ? L.tileLayer(`/tiles/${k}/${layer}/{z}/{x}/{y}.png`, {
      maxZoom: 19, maxNativeZoom: 18, opacity: document.getElementById("opacity").value / 100,
    }).on("tileload", () => { state.loaded += 1; })
      .on("loading", () => { state.pending += 1; })
      .on("load", () => { state.pending = Math.max(0, state.pending - 1); })
      .addTo(state.maps[k]) : null;
  });
  legendFor(layer);
}

async function query(k, latlng) {
  const url = `/api/point?lon=${latlng.lng}&lat=${latlng.lat}&set_id=${k}`;
  const answer = await (await fetch(url)).json();
  state.lastQuery = answer;
  const rows = [];
  const lc = answer.landcover, fuel = answer.fuel, conf = answer.confidence, tr = answer.transition;
  if (lc) rows.push(["Land cover", `${lc.value} ${lc.name}`]);
  if (fuel) rows.push(["Fuel model", `${fuel.value} ${fuel.name}`]);
  if (conf) rows.push(["Confidence", `${conf.value} %`]);
  if (tr) rows.push(["Transition", `${tr.name}`]);
  if (answer.change_mask) rows.push(["Change", answer.change_mask.name]);
  if (answer.model) rows.push(["Model", `${answer.model.name || answer.model.uri} v${answer.model.version || "?"}`]);
  if (!rows.length) rows.push(["", "no map here"]);
  const table = el("table");
  rows.forEach(([k2, v]) => { const tr2 = el("tr"); tr2.appendChild(el("td", {}, k2)); tr2.appendChild(el("td", {}, v)); table.appendChild(tr2); });
  const div = el("div", { class: "query" });
  div.appendChild(table);
  L.popup().setLatLng(latlng).setContent(div).openOn(state.maps[k]);
}

function sync(maps) {
  let moving = false;
  maps.forEach(a => a.on("move", () => {
    if (moving) return;
    moving = true;
    maps.forEach(b => { if (b !== a) b.setView(a.getCenter(), a.getZoom(), { animate: false }); });
    moving = false;
  }));
}

async function start() {
  const info = await (await fetch("/api/layers")).json();
  state.sets = info.sets;
  const container = document.getElementById("maps");
  info.sets.forEach((set, k) => {
    const pane = el("div", { class: "map-pane" });
    pane.appendChild(el("h2", {}, set.name));
    const div = el("div", { class: "map", id: `map${k}` });
    pane.appendChild(div);
    container.appendChild(pane);
    const map = L.map(div, { zoomSnap: 1 });
    const [w, s, e, n] = set.bounds;
    map.fitBounds([[s, w], [n, e]]);
    if (info.base) {
      state.bases[k] = L.tileLayer("/base/{z}/{x}/{y}.png", { maxZoom: 19, maxNativeZoom: 18 }).addTo(map);
    }
    map.on("click", e => query(k, e.latlng));
    const outlines = L.layerGroup(set.footprints.map(fp => {
      const [fw, fs, fe, fn] = fp.bounds;
      return L.rectangle([[fs, fw], [fn, fe]], { color: "#24323f", weight: 1, fill: false, interactive: true })
        .bindTooltip(fp.name).on("click", ev => { L.DomEvent.stop(ev); map.fitBounds([[fs, fw], [fn, fe]]); });
    })).addTo(map);
    state.outlines = state.outlines || [];
    state.outlines.push(outlines);
    state.maps.push(map);
    state.overlays.push(null);
  });
  if (info.sets.length > 1) {  // one view for all: the first map's, then they move together
    state.maps.slice(1).forEach(m => m.setView(state.maps[0].getCenter(), state.maps[0].getZoom(), { animate: false }));
    sync(state.maps);
  }
  const keys = [...new Set(info.sets.flatMap(s => s.layers.map(l => l.key)))];
  const select = document.getElementById("layer");
  keys.forEach(key => select.appendChild(el("option", { value: key }, info.sets[0].layers.concat(info.sets.flatMap(s => s.layers)).find(l => l.key === key).title)));
  select.addEventListener("change", () => showLayer(select.value));
  document.getElementById("opacity").addEventListener("input", e => state.overlays.forEach(o => o && o.setOpacity(e.target.value / 100)));
  if (info.base) {
    document.getElementById("base-choice").hidden = false;
    document.getElementById("base").addEventListener("change", e => state.bases.forEach((b, k) => e.target.checked ? b.addTo(state.maps[k]) : state.maps[k].removeLayer(b)));
  }
  showLayer(keys[0]);
  document.getElementById("status").textContent = info.sets.map(s => s.folder).join("  |  ");
  state.ready = true;
}

start();
