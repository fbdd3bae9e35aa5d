// The page of `onnxviz serve`: a client of the server's public HTTP API and nothing else.
// GET /v1/models, /v2/models/NAME, /v1/methods; POST /v1/models/NAME:predict and :explain.
// The pictures shown are the PNGs the API returns (no colouring here): see docs/serving.md.
"use strict";

const $ = (sel) => document.querySelector(sel);
const API_ALPHA = 0.4;  // the alpha of the API's overlay PNG (onnxviz explain's default)
const SAMPLES = {chelsea: "a cat", astronaut: "an astronaut", coffee: "a cup of coffee",
                 rocket: "a rocket"};
// CLI flags whose name differs from the option's (onnxviz/cli/options.py: RESERVED)
const CLI_FLAG = {alpha: "--lime-alpha"};

const state = {models: [], model: null, meta: null, methods: {}, image: null, photo: null,
               source: null, name: "image", picks: [], target: null, busy: 0};

// ---- talking to the server -----------------------------------------------------------------
function headers(json) {
  const h = json ? {"Content-Type": "application/json"} : {};
  const token = $("#token").value.trim();
  if (token) h.Authorization = "Bearer " + token;
  return h;
}

async function api(path, body) {
  const init = body === undefined ? {headers: headers(false)}
                                  : {method: "POST", headers: headers(true), body: JSON.stringify(body)};
  let r;
  try { r = await fetch(path, init); } catch (e) { throw new Error("the server did not answer: " + e.message); }
  let data = null;
  try { data = await r.json(); } catch (e) { data = null; }
  if (!r.ok) {
    const why = data && data.error ? data.error : r.status + " " + r.statusText;
    throw new Error((r.status === 401 ? "401: enter the server's token above. " : "") + why);
  }
  return data;
}

function say(text, kind) {
  const m = $("#message");
  m.textContent = text || "";
  m.className = kind || "";
  m.hidden = !text;
}

async function busy(work) {
  state.busy++;
  document.body.setAttribute("aria-busy", "true");
  try { return await work(); }
  catch (e) { say(e.message); }
  finally { if (--state.busy === 0) document.body.removeAttribute("aria-busy"); }
}

// ---- models and methods ----------------------------------------------------------------------
async function start() {
  say("");
  const [models, methods] = await Promise.all([api("/v1/models"), api("/v1/methods")]);
  state.models = models.models;
  state.methods = {};
  methods.methods.forEach((m) => { state.methods[m.name] = m; });
  state.defaultMethod = methods.default;
  const sel = $("#model");
  sel.textContent = "";
  state.models.forEach((n) => sel.append(new Option(n, n)));
  await chooseModel(state.models[0]);
}

async function chooseModel(name) {
  state.model = name;
  state.meta = await api("/v2/models/" + encodeURIComponent(name));
  const p = state.meta.parameters;
  $("#model-info").textContent = `${p.task}, ${p.num_classes} classes, input ${p.input_size.join("x")}`;
  $("#detect-options").hidden = p.task !== "detect";
  const sel = $("#method-name");
  const keep = sel.value;
  sel.textContent = "";
  Object.values(state.methods).forEach((m) => {
    const o = new Option(m.name, m.name);
    const why = m.refuses[name];
    if (why) { o.disabled = true; o.title = why; o.textContent += " (does not apply)"; }
    sel.append(o);
  });
  const usable = [keep, state.defaultMethod].find((m) => m && state.methods[m] && !state.methods[m].refuses[name]);
  sel.value = usable || ([...sel.options].find((o) => !o.disabled) || {}).value || "";
  showMethod();
  $("#cards").textContent = "";
  if (state.image) await predict();
}

function showMethod() {
  const m = state.methods[$("#method-name").value];
  const form = $("#options");
  form.textContent = "";
  if (!m) return;
  $("#method-summary").textContent = m.summary;
  m.options.forEach((o) => {
    const id = "opt-" + o.name;
    const label = document.createElement("label");
    label.htmlFor = id;
    label.textContent = o.name;
    let input;
    if (o.type === "bool") {
      input = document.createElement("input");
      input.type = "checkbox";
      input.checked = !!o.default;
    } else if (o.type === "word") {
      input = document.createElement("select");
      if (o.none) input.append(new Option("auto", ""));
      o.choices.forEach((c) => input.append(new Option(c, c)));
      input.value = o.default === null ? "" : o.default;
    } else {
      input = document.createElement("input");
      input.type = "text";
      input.placeholder = o.default === null ? "auto" : String(o.default);
      if (o.choices && o.choices.length) {
        const list = document.createElement("datalist");
        list.id = id + "-words";
        o.choices.forEach((c) => list.append(new Option(c, c)));
        form.append(list);
        input.setAttribute("list", list.id);
      }
    }
    input.id = id;
    input.name = o.name;
    const hint = document.createElement("span");
    hint.className = "hint";
    hint.id = id + "-hint";
    const cap = o.cap ? Object.entries(o.cap).map(([k, v]) => `; this server: ${k === "min" ? ">=" : "<="} ${v}`).join("") : "";
    hint.textContent = (o.describe ? o.describe : o.type) + ", default " + shown(o.default) + cap;
    input.setAttribute("aria-describedby", hint.id);
    form.append(label, input, hint);
  });
}

function shown(v) { return v === null ? "auto" : Array.isArray(v) ? v.join(",") : String(v); }

// The options the user changed, checked against the registry's declared type and range (the
// server checks again, with its caps): {name: JSON value}.
function chosenOptions() {
  const m = state.methods[$("#method-name").value];
  const out = {};
  m.options.forEach((o) => {
    const input = document.getElementById("opt-" + o.name);
    input.classList.remove("bad");
    let v;
    if (o.type === "bool") { if (input.checked === !!o.default) return; v = input.checked; }
    else if (o.type === "word") { v = input.value === "" ? null : input.value; if (v === o.default) return; }
    else {
      const text = input.value.trim();
      if (!text) return;
      try { v = checked(o, text); } catch (e) { input.classList.add("bad"); input.focus(); throw e; }
    }
    out[o.name] = v;
  });
  return out;
}

function checked(o, text) {
  if (o.type === "text") return text;
  if (o.choices && o.choices.includes(text)) return text;
  const parts = text.split(",").map((s) => s.trim());
  const bad = () => new Error(`${o.name} must be ${o.describe || o.type}, got ${JSON.stringify(text)}`);
  if (parts.length > (o.pair ? 2 : 1) || (o.type === "float" && o.describe && o.describe.includes("per channel") && parts.length > 4)) throw bad();
  const nums = parts.map((s) => {
    const x = Number(s);
    if (s === "" || !Number.isFinite(x) || (o.type === "int" && !Number.isInteger(x))) throw bad();
    const low = o.open_low ? x <= o.low : x < o.low;
    const high = o.open_high ? x >= o.high : x > o.high;
    if (low || high) throw bad();
    return x;
  });
  return nums.length === 1 ? nums[0] : nums;
}

// ---- the image -------------------------------------------------------------------------------
function readFile(file) {
  if (!file) return;
  const r = new FileReader();
  r.onload = () => busy(() => useImage(r.result, file.name || "pasted.png"));
  r.onerror = () => say("cannot read " + file.name);
  r.readAsDataURL(file);
}

async function useSample(name) {
  const r = await fetch(`/ui/samples/${name}.png`);
  if (!r.ok) throw new Error(`sample ${name}: ${r.status}`);
  const blob = await r.blob();
  const url = await new Promise((ok) => { const f = new FileReader(); f.onload = () => ok(f.result); f.readAsDataURL(blob); });
  await useImage(url, "skimage:" + name);
}

async function useImage(dataURL, source) {
  say("");
  state.image = dataURL.slice(dataURL.indexOf(",") + 1);
  state.source = source;
  state.name = source.replace(/^skimage:/, "").replace(/\.[^.]*$/, "").replace(/[^A-Za-z0-9._-]+/g, "_") || "image";
  const img = $("#photo");
  img.src = dataURL;
  img.alt = "The image explained: " + source;
  state.photo = dataURL;
  $("#photo-box").hidden = false;
  $("#cards").textContent = "";
  await predict();
}

// ---- predictions: classes, boxes or regions --------------------------------------------------
function nms() {
  if (state.meta.parameters.task !== "detect") return {};
  return {score_threshold: Number($("#score_threshold").value), iou_threshold: Number($("#iou_threshold").value)};
}

async function predict() {
  const task = state.meta.parameters.task;
  const list = $("#predictions");
  list.textContent = "";
  $("#boxes").textContent = "";
  $("#regions").hidden = true;
  state.picks = [];
  state.target = null;
  const params = task === "classify" ? {top: 5} : nms();
  let answer;
  try { answer = await api(`/v1/models/${encodeURIComponent(state.model)}:predict`, {instances: [state.image], parameters: params}); }
  catch (e) { $("#predict-hint").textContent = "No prediction."; throw e; }
  const rows = answer.predictions[0];
  const natural = await photoSize();
  rows.forEach((p, k) => {
    let text, score, target, name;
    if (task === "classify") { name = p.label; text = `${p.label} (${p.index})`; score = p.probability !== null ? (100 * p.probability).toFixed(1) + " %" : p.score.toFixed(3); target = p.index; }
    else if (task === "detect") { name = p.label; text = `${k}: ${p.label} [${p.box.map((v) => Math.round(v)).join(", ")}]`; score = p.score.toFixed(3); target = k; }
    else { name = p.label; text = `${p.label} region (${p["class"]})`; score = (100 * p.area).toFixed(1) + " %"; target = p["class"]; }
    const b = document.createElement("button");
    b.type = "button";
    b.dataset.target = JSON.stringify(target);
    b.setAttribute("aria-pressed", "false");
    b.innerHTML = "<span></span><span></span>";
    b.children[0].textContent = text;
    b.children[1].textContent = score;
    b.addEventListener("click", () => pick(k, true));
    const li = document.createElement("li");
    li.append(b);
    list.append(li);
    state.picks.push({target, name, text, button: b, box: p.box});
    if (task === "detect") drawBox(p, k, natural);
  });
  if (task === "segment" && answer.class_maps) await drawRegions(answer.class_maps[0]);
  $("#predict-hint").textContent = rows.length ? (task === "classify" ? "Top classes; choose one to explain:" : task === "detect" ? "Detections; choose a box to explain:" : "Regions; choose one to explain:")
                                               : "The detector finds nothing above the score threshold.";
  if (rows.length) pick(0, false);
}

function pick(k, explainNow) {
  state.picks.forEach((p, j) => {
    p.button.setAttribute("aria-pressed", String(j === k));
    const box = document.getElementById("box-" + j);
    if (box) box.classList.toggle("on", j === k);
  });
  state.target = state.picks[k].target;
  state.targetName = state.picks[k].name;
  if (explainNow) busy(explain);
}

function photoSize() {
  const img = $("#photo");
  return img.decode().then(() => [img.naturalWidth, img.naturalHeight]);
}

function drawBox(p, k, size) {
  const [w, h] = size;
  const [x0, y0, x1, y1] = p.box;
  const b = document.createElement("button");
  b.type = "button";
  b.className = "box";
  b.id = "box-" + k;
  b.style.left = (100 * x0 / w) + "%";
  b.style.top = (100 * y0 / h) + "%";
  b.style.width = (100 * (x1 - x0) / w) + "%";
  b.style.height = (100 * (y1 - y0) / h) + "%";
  b.setAttribute("aria-label", `box ${k}: ${p.label}, score ${p.score.toFixed(3)}; explain it`);
  const tag = document.createElement("span");
  tag.textContent = `${k} ${p.label}`;
  b.append(tag);
  b.addEventListener("click", () => pick(k, true));
  $("#boxes").append(b);
}

// A segmenter's class map (the API's PNG of class indices) coloured for display.
async function drawRegions(b64) {
  const img = new Image();
  img.src = "data:image/png;base64," + b64;
  await img.decode();
  const c = $("#regions");
  c.width = img.naturalWidth;
  c.height = img.naturalHeight;
  const g = c.getContext("2d");
  g.drawImage(img, 0, 0);
  const px = g.getImageData(0, 0, c.width, c.height);
  const palette = [[31, 119, 180], [255, 127, 14], [44, 160, 44], [214, 39, 40], [148, 103, 189], [140, 86, 75], [227, 119, 194], [127, 127, 127]];
  for (let i = 0; i < px.data.length; i += 4) {
    const col = palette[px.data[i] % palette.length];
    px.data[i] = col[0]; px.data[i + 1] = col[1]; px.data[i + 2] = col[2]; px.data[i + 3] = 255;
  }
  g.putImageData(px, 0, 0);
  c.hidden = false;
}

// ---- explanations ----------------------------------------------------------------------------
function request(method, options) {
  const parameters = Object.assign({method, target: state.target, cmap: $("#cmap").value,
                                    outputs: ["heatmap_png", "overlay_png", "heatmap"]}, nms(), options);
  return {instances: [state.image], parameters};
}

async function explain() {
  if (!state.image) throw new Error("load an image first (drop, choose, paste or a sample)");
  const method = $("#method-name").value;
  const body = request(method, chosenOptions());
  say("");
  const card = document.createElement("figure");
  card.className = "card";
  card.dataset.method = method;
  card.textContent = `${method}: explaining…`;
  $("#cards").prepend(card);
  try { await fill(card, body); } catch (e) { card.remove(); throw e; }
}

async function fill(card, body) {
  const t0 = performance.now();
  const answer = await api(`/v1/models/${encodeURIComponent(state.model)}:explain`, body);
  const wall = performance.now() - t0;
  const e = answer.explanations[0];
  card.textContent = "";
  card.request = body;
  card.answer = e;
  const task = state.meta.parameters.task;
  const cap = document.createElement("figcaption");
  const what = task === "detect" ? `box ${body.parameters.target}: ${e.label}` : task === "segment" ? `${e.label} region` : `${e.label} (${e.target})`;
  cap.innerHTML = "<b></b> · <span></span> · score <span></span> · <span class='time'></span>";
  cap.children[0].textContent = e.method;
  cap.children[1].textContent = what;
  cap.children[2].textContent = Number(e.score).toPrecision(4);
  cap.children[3].textContent = `${Math.round(1000 * e.timings.total)} ms (server), ${Math.round(wall)} ms (round trip)`;
  card.append(cap);
  const alt = `${e.method} explanation of ${what} on ${state.source}`;
  if (e.heatmap_png) {
    const stack = document.createElement("div");
    stack.className = "stack";
    stack.innerHTML = "<img class='photo'><img class='heat'><img class='overlay'>";
    const [photo, heat, over] = stack.children;
    photo.src = state.photo; photo.alt = "the photo under the " + alt;
    heat.src = "data:image/png;base64," + e.heatmap_png; heat.alt = "heatmap: " + alt;
    over.src = "data:image/png;base64," + e.overlay_png; over.alt = "overlay: " + alt;
    if (e.box) {
      const b = document.createElement("div");
      b.className = "box";
      const [w, h] = await photoSize();
      Object.assign(b.style, {left: 100 * e.box[0] / w + "%", top: 100 * e.box[1] / h + "%",
                              width: 100 * (e.box[2] - e.box[0]) / w + "%", height: 100 * (e.box[3] - e.box[1]) / h + "%"});
      stack.append(b);
    }
    card.append(stack);
  } else {
    const p = document.createElement("p");
    p.className = "flag";
    p.textContent = "Not drawn: the map is no finding (" + Object.keys(e.extras).filter((k) => k === "blank" || k === "nonfinite").map((k) => `${k}: ${e.extras[k]}`).join("; ") + ")";
    card.append(p);
  }
  card.append(actions(card, e, body));
  applyOpacity();
}

function actions(card, e, body) {
  const div = document.createElement("div");
  div.className = "actions";
  const stem = `${state.name}.${e.method}`;
  const record = Object.fromEntries(Object.entries(e).filter(([k]) => !["heatmap", "heatmap_png", "overlay_png"].includes(k)));
  const link = (text, name, href) => { const a = document.createElement("a"); a.textContent = text; a.download = name; a.href = href; div.append(a); };
  if (e.heatmap_png) {
    link("heatmap PNG", stem + ".heatmap.png", "data:image/png;base64," + e.heatmap_png);
    link("overlay PNG", stem + ".overlay.png", "data:image/png;base64," + e.overlay_png);
  }
  link("heatmap NPY", stem + ".heatmap.npy", URL.createObjectURL(npy(e.heatmap)));
  link("JSON record", stem + ".json", URL.createObjectURL(new Blob([JSON.stringify(record, null, 1)], {type: "application/json"})));
  const cli = cliCommand(body), py = pythonCode(body);
  const copy = (text, what) => { const b = document.createElement("button"); b.type = "button"; b.textContent = "copy as " + what; b.addEventListener("click", () => copyText(text, what)); div.append(b); };
  copy(cli, "CLI command");
  copy(py, "Python");
  const del = document.createElement("button");
  del.type = "button"; del.textContent = "remove"; del.setAttribute("aria-label", "remove this card");
  del.addEventListener("click", () => card.remove());
  div.append(del);
  const more = document.createElement("details");
  more.innerHTML = "<summary>reproduce</summary><pre class='cli'></pre><pre class='python'></pre>";
  more.querySelector(".cli").textContent = cli;
  more.querySelector(".python").textContent = py;
  div.append(more);
  return div;
}

// A float32 .npy file of a 2-D array given as nested lists (NumPy's format, version 1.0).
function npy(rows) {
  const h = rows.length, w = rows[0].length;
  let head = `{'descr': '<f4', 'fortran_order': False, 'shape': (${h}, ${w}), }`;
  head += " ".repeat(64 - ((10 + head.length + 1) % 64)) + "\n";
  const buf = new ArrayBuffer(10 + head.length + 4 * h * w);
  const bytes = new Uint8Array(buf);
  bytes.set([0x93, 78, 85, 77, 80, 89, 1, 0]);
  new DataView(buf).setUint16(8, head.length, true);
  for (let i = 0; i < head.length; i++) bytes[10 + i] = head.charCodeAt(i);
  const out = new DataView(buf, 10 + head.length);
  rows.forEach((row, y) => row.forEach((v, x) => out.setFloat32(4 * (y * w + x), v, true)));
  return new Blob([buf], {type: "application/octet-stream"});
}

function quote(s) { return /^[A-Za-z0-9_.,:\/=+-]+$/.test(s) ? s : "'" + s.replace(/'/g, "'\\''") + "'"; }

function cliCommand(body) {
  const p = body.parameters;
  const model = state.model + ".onnx";
  const parts = ["onnxviz", "explain", model, quote(imageArg()), "--method", p.method];
  const t = p.target;
  if (t && typeof t === "object") {  // a user's box: [box, label] or {box, label}
    const box = Array.isArray(t) ? t[0] : t.box, label = Array.isArray(t) ? t[1] : t.label;
    parts.push("--box", box.join(","), "--target", quote(String(label)));
  } else if (t !== null && t !== undefined) parts.push("--target", quote(String(t)));
  Object.entries(p).forEach(([k, v]) => {
    if (["method", "target", "outputs", "cmap"].includes(k)) return;
    const flag = CLI_FLAG[k] || "--" + k.replace(/_/g, "-");
    if (typeof v === "boolean") parts.push(v ? flag : "--no-" + flag.slice(2));
    else parts.push(flag, quote(Array.isArray(v) ? v.join(",") : String(v)));
  });
  if (p.cmap !== "jet") parts.push("--cmap", p.cmap);
  parts.push("--npy");
  return parts.join(" ");
}

function imageArg() { return state.source; }

function pyValue(v) {
  if (v === null) return "None";
  if (typeof v === "boolean") return v ? "True" : "False";
  if (Array.isArray(v)) return "(" + v.map(pyValue).join(", ") + ")";
  if (typeof v === "object") return "{" + Object.entries(v).map(([k, x]) => `${JSON.stringify(k)}: ${pyValue(x)}`).join(", ") + "}";
  return JSON.stringify(v);
}

function pythonCode(body) {
  const p = body.parameters;
  const opts = Object.entries(p).filter(([k]) => !["method", "target", "outputs", "cmap"].includes(k))
    .map(([k, v]) => `, ${k}=${pyValue(v)}`).join("");
  const many = state.meta.parameters.task !== "classify";
  return [
    "import onnxviz as ov",
    "from onnxviz.results import Render, pictures",
    "",
    `model = ov.load(${JSON.stringify(state.model + ".onnx")})`,
    `image = ov.read_image(${JSON.stringify(imageArg())}, exact=True)`,
    `e = ov.explain(model, image, method=${JSON.stringify(p.method)}, target=${pyValue(p.target)}${opts})${many ? "[0]" : ""}`,
    `pngs = pictures(image, e, Render(cmap=${JSON.stringify(p.cmap)}), ("heatmap", "overlay"))`,
    "print(e.label, e.score, e.heatmap.shape)",
  ].join("\n");
}

async function copyText(text, what) {
  try { await navigator.clipboard.writeText(text); }
  catch (e) {
    const t = document.createElement("textarea");
    t.value = text; document.body.append(t); t.select(); document.execCommand("copy"); t.remove();
  }
  say(what + " copied to the clipboard", "info");
}

// ---- the view: opacity and colormap ----------------------------------------------------------
function applyOpacity() {
  const a = Number($("#opacity").value);
  $("#opacity-value").textContent = a.toFixed(2);
  const exact = Math.abs(a - API_ALPHA) < 1e-9;
  document.querySelectorAll(".card .stack").forEach((s) => {
    const [photo, heat, over] = s.querySelectorAll("img");
    heat.style.opacity = String(a);
    over.hidden = !exact;
    photo.hidden = exact;
    heat.hidden = exact;
  });
}

async function redraw() {
  const cards = [...document.querySelectorAll(".card")].filter((c) => c.request);
  for (const c of cards) {
    c.request.parameters.cmap = $("#cmap").value;
    await fill(c, c.request);
  }
}

// ---- wiring ----------------------------------------------------------------------------------
function wire() {
  const drop = $("#drop"), file = $("#file");
  drop.addEventListener("click", () => file.click());
  drop.addEventListener("keydown", (ev) => { if (ev.key === "Enter" || ev.key === " ") { ev.preventDefault(); file.click(); } });
  file.addEventListener("change", () => readFile(file.files[0]));
  ["dragenter", "dragover"].forEach((t) => drop.addEventListener(t, (ev) => { ev.preventDefault(); drop.classList.add("over"); }));
  ["dragleave", "drop"].forEach((t) => drop.addEventListener(t, () => drop.classList.remove("over")));
  drop.addEventListener("drop", (ev) => { ev.preventDefault(); readFile(ev.dataTransfer.files[0]); });
  document.addEventListener("paste", (ev) => {
    const item = [...(ev.clipboardData || {items: []}).items].find((i) => i.kind === "file");
    if (item) readFile(item.getAsFile());
  });
  Object.entries(SAMPLES).forEach(([name, what]) => {
    const b = document.createElement("button");
    b.type = "button";
    b.dataset.sample = name;
    b.title = name;
    b.innerHTML = "<img>";
    b.firstChild.src = `/ui/samples/${name}.png`;
    b.firstChild.alt = `sample photo: ${what} (skimage ${name})`;
    b.addEventListener("click", () => busy(() => useSample(name)));
    $("#samples").append(b);
  });
  $("#model").addEventListener("change", (ev) => busy(() => chooseModel(ev.target.value)));
  $("#method-name").addEventListener("change", showMethod);
  $("#explain").addEventListener("click", () => busy(explain));
  $("#opacity").addEventListener("input", applyOpacity);
  $("#cmap").addEventListener("change", () => busy(redraw));
  $("#token").addEventListener("change", () => busy(start));
  ["#score_threshold", "#iou_threshold"].forEach((s) => $(s).addEventListener("change", () => state.image && busy(predict)));
}

wire();
busy(start);
