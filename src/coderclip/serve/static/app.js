// coderclip web page: sends the chosen images to /v1/classify and draws the answers.
"use strict";

const $ = (sel) => document.querySelector(sel);
const state = { classes: 0 };

function headers() {
  const key = $("#api-key").value;
  return key ? { "Authorization": "Bearer " + key } : {};
}

function setStatus(text, isError) {
  const s = $("#status");
  s.textContent = text;
  s.classList.toggle("error", Boolean(isError));
}

async function loadModel() {
  const r = await fetch("/v1/model", { headers: headers() });
  if (r.status === 401) {
    $("#key-label").hidden = false;
    $("#model-line").textContent = "this server needs an API key: enter it below";
    return;
  }
  const info = await r.json();
  if (!r.ok) { setStatus(info.message, true); return; }
  state.classes = info.knowledge.classes;
  $("#model-line").textContent =
    `${info.model.name} · ${info.knowledge.name || "knowledge"} (${info.knowledge.classes} classes)`;
  const select = $("#method");
  select.replaceChildren();
  for (const m of info.methods) {
    const o = document.createElement("option");
    o.value = o.textContent = m;
    o.selected = m === info.default_method;
    select.append(o);
  }
  $("#top-k").max = Math.min(20, info.knowledge.classes);
}

function share(e) {
  const v = e.contribution;
  return (v >= 0 ? "+" : "") + v.toFixed(3);
}

function render(file, result) {
  const node = $("#result-template").content.firstElementChild.cloneNode(true);
  node.querySelector(".thumb").src = URL.createObjectURL(file);
  node.querySelector(".thumb").alt = file.name;
  node.querySelector(".image-name").textContent = file.name;
  node.querySelector(".top1-label").textContent = result.label;
  if (result.reranked) {
    node.querySelector(".rerank-note").textContent =
      `(the rerank preferred it over ${result.stage1_label})`;
  }
  const bars = node.querySelector(".bars");
  for (const p of result.predictions) {
    const li = document.createElement("li");
    li.className = "bar";
    const fill = document.createElement("span");
    fill.className = "fill";
    fill.style.width = (100 * p.score).toFixed(1) + "%";
    const text = document.createElement("span");
    text.className = "text";
    const label = document.createElement("span");
    label.className = "label";
    label.textContent = p.label;
    const score = document.createElement("span");
    score.className = "score";
    score.textContent = (100 * p.score).toFixed(1) + "%";
    text.append(label, score);
    li.append(fill, text);
    bars.append(li);
  }
  if (result.explanation) {
    const why = node.querySelector(".why");
    why.hidden = false;
    const body = why.querySelector("tbody");
    for (const e of result.explanation) {
      const tr = document.createElement("tr");
      tr.className = "explanation-row";
      const cells = [share(e), e.type + (e.versus ? ` (vs ${e.versus})` : ""), e.text];
      cells.forEach((c, i) => {
        const td = document.createElement("td");
        td.textContent = c;
        td.className = ["share", "type", "text"][i];
        tr.append(td);
      });
      body.append(tr);
    }
  }
  return node;
}

async function classify(files) {
  files = Array.from(files).filter((f) => f.type.startsWith("image/") || f.type === "");
  if (!files.length) { setStatus("no image files among those given", true); return; }
  const form = new FormData();
  for (const f of files) form.append("images", f, f.name);
  form.append("top_k", $("#top-k").value);
  form.append("method", $("#method").value);
  form.append("explain", $("#explain").checked ? "true" : "false");
  setStatus(`classifying ${files.length} image(s)…`);
  let r;
  try {
    r = await fetch("/v1/classify", { method: "POST", body: form, headers: headers() });
  } catch (err) {
    setStatus("the server did not answer: " + err, true);
    return;
  }
  const data = await r.json();
  if (!r.ok) { setStatus(`${data.status}: ${data.message}`, true); return; }
  const results = $("#results");
  results.replaceChildren(...data.results.map((res, i) => render(files[i], res)));
  setStatus(`${data.results.length} image(s) classified with ${data.method}`);
  document.body.dataset.state = "done";
}

function init() {
  const drop = $("#drop");
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    classify(e.dataTransfer.files);
  });
  $("#file-input").addEventListener("change", (e) => classify(e.target.files));
  $("#api-key").addEventListener("change", loadModel);
  loadModel().catch((err) => setStatus("cannot reach the server: " + err, true));
}

document.addEventListener("DOMContentLoaded", init);
