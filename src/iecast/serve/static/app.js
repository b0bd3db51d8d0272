"use strict";
// The page talks to the JSON API of iecast.serve.app: submit a job, poll it, show the result.
const $ = (id) => document.getElementById(id);
let pageConfig = null;

function showError(message) {
  $("error").textContent = message;
  $("error").hidden = false;
  $("progress").hidden = true;
  $("status").textContent = "";
  $("go").disabled = false;
}

function showPreview(input, img) {
  const file = input.files[0];
  if (!file) { img.hidden = true; return; }
  img.src = URL.createObjectURL(file);
  img.hidden = false;
}

async function readJson(response) {
  try { return await response.json(); } catch (e) { return { error: `server answered ${response.status}` }; }
}

async function loadConfig() {
  const response = await fetch("/api/config");
  pageConfig = await response.json();
  const sizes = $("size");
  for (const size of pageConfig.sizes) {
    const option = new Option(`${size} px`, size, false, size === pageConfig.default_size);
    sizes.add(option);
  }
  const colorLabels = { luminance: "the photo's (keep its colours)", histogram: "the photo's palette, given to the style" };
  for (const mode of pageConfig.color_modes) $("preserve-color").add(new Option(colorLabels[mode] || mode, mode));
  $("preserve-color").disabled = !pageConfig.color_modes.length;
  const picker = $("style-picker");
  pageConfig.styles.forEach((style, index) => {
    const label = document.createElement("label");
    label.innerHTML = `<input type="radio" name="style_name"><img alt=""><span></span>`;
    const radio = label.querySelector("input");
    radio.value = style.name;
    radio.checked = index === 0;
    label.querySelector("img").src = style.url;
    label.querySelector("img").alt = style.label;
    label.querySelector("span").textContent = style.label;
    picker.appendChild(label);
  });
  if (!pageConfig.styles.length) picker.textContent = "No sample styles installed: upload one.";
}

async function poll(statusUrl) {
  for (;;) {
    const response = await fetch(statusUrl);
    const job = await readJson(response);
    if (!response.ok) return showError(job.error || `server answered ${response.status}`);
    $("progress").value = job.progress;
    if (job.status === "queued") {
      $("status").textContent = `Waiting in the queue (position ${job.position})`;
    } else if (job.status === "running") {
      $("status").textContent = `${job.stage[0].toUpperCase()}${job.stage.slice(1)}: ${Math.round(job.progress * 100)}%`;
    } else if (job.status === "failed") {
      return showError(job.error);
    } else if (job.status === "done") {
      $("status").textContent = `Done: ${job.width} x ${job.height}`;
      $("progress").hidden = true;
      $("result").src = job.result_url;
      $("download").href = job.result_url;
      $("download").setAttribute("download", job.download_name);
      $("result-box").hidden = false;
      $("go").disabled = false;
      return;
    }
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

async function submit(event) {
  event.preventDefault();
  $("error").hidden = true;
  $("result-box").hidden = true;
  const content = $("content").files[0];
  if (!content) return showError("Choose a photo first.");
  const styleFile = $("style").files[0];
  const sample = document.querySelector('input[name="style_name"]:checked');
  if (!styleFile && !sample) return showError("Choose a sample style or upload one.");
  const tooBig = [content, styleFile].find((f) => f && f.size > pageConfig.max_upload_bytes);
  if (tooBig) return showError(`${tooBig.name} is larger than the limit of ${(pageConfig.max_upload_bytes / 1048576).toFixed(1)} MB.`);
  const form = new FormData();
  form.append("content", content);
  if (styleFile) form.append("style", styleFile); else form.append("style_name", sample.value);
  form.append("alpha", $("alpha").value);
  form.append("preserve_color", $("preserve-color").value);
  form.append("size", $("size").value);
  $("go").disabled = true;
  $("progress").hidden = false;
  $("progress").value = 0;
  $("status").textContent = "Uploading";
  try {
    const response = await fetch("/api/jobs", { method: "POST", body: form });
    const answer = await readJson(response);
    if (!response.ok) return showError(answer.error || `server answered ${response.status}`);
    await poll(answer.status_url);
  } catch (e) {
    showError(`Could not reach the server (${e.message}).`);
  }
}

$("alpha").addEventListener("input", () => { $("alpha-value").textContent = Number($("alpha").value).toFixed(2); });
$("content").addEventListener("change", () => showPreview($("content"), $("content-preview")));
$("style").addEventListener("change", () => {
  showPreview($("style"), $("style-preview"));
  if ($("style").files[0]) document.querySelectorAll('input[name="style_name"]').forEach((r) => { r.checked = false; });
});
$("style-picker").addEventListener("change", () => { $("style").value = ""; $("style-preview").hidden = true; });
$("stylize-form").addEventListener("submit", submit);
loadConfig().catch((e) => showError(`Could not load the page settings (${e.message}).`));
