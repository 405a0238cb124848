// pilothouse console playground: POST the form, read the server-sent events as they arrive.
"use strict";

const show = (box, state, text) => {
  box.dataset.state = state;
  box.textContent = text;
};

const link = (el, href, text) => {
  el.href = href;
  el.textContent = text;
};

async function run(form) {
  const out = document.getElementById(form.dataset.output);
  const state = document.getElementById(`${out.id}-state`);
  const result = document.getElementById(`${out.id}-result`);
  const button = form.querySelector("button[type=submit]");
  const prefix = form.action.replace(/\/playground\/run$/, "");
  out.textContent = "";
  out.dataset.chunks = "0";
  result.hidden = true;
  button.disabled = true;
  show(state, "streaming", "Sending…");
  let failed = null;
  try {
    const response = await fetch(form.action, {
      method: "POST",
      body: new URLSearchParams(new FormData(form)),
      credentials: "same-origin",
      headers: { accept: "text/event-stream" },
    });
    const type = response.headers.get("content-type") || "";
    if (!response.ok || !type.startsWith("text/event-stream")) {
      let message = `Refused (${response.status}).`;
      if (type.startsWith("application/json")) {
        const body = await response.json();
        message = `Refused (${response.status}): ${body.error.message}`;
      }
      show(state, "failed", message);
      return;
    }
    show(state, "streaming", "Streaming…");
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let pending = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      pending += decoder.decode(value, { stream: true });
      const frames = pending.split("\n\n");
      pending = frames.pop();
      for (const frame of frames) {
        let name = "message";
        let data = "";
        for (const line of frame.split("\n")) {
          if (line.startsWith("event: ")) name = line.slice(7);
          else if (line.startsWith("data: ")) data += line.slice(6);
        }
        if (!data) continue;
        const payload = JSON.parse(data);
        if (name === "delta") {
          out.textContent += payload.text;
          out.dataset.chunks = String(Number(out.dataset.chunks) + 1);
        } else if (name === "error") {
          failed = payload.message;
        } else if (name === "done") {
          const rid = encodeURIComponent(payload.request_id);
          link(result.querySelector("[data-field=request]"), `${prefix}/requests/${rid}`, payload.request_id);
          link(result.querySelector("[data-field=trace]"), `${prefix}/traces/${encodeURIComponent(payload.trace_id)}`, payload.trace_id);
          result.querySelector("[data-field=cost]").textContent = payload.cost + (payload.cache_hit ? " (cache hit)" : "");
          result.querySelector("[data-field=served]").textContent = payload.prompt ? `${payload.prompt} on ${payload.alias}` : payload.alias;
          result.hidden = false;
        }
      }
    }
    if (failed) show(state, "failed", `Failed: ${failed}`);
    else if (result.hidden) show(state, "failed", "The stream ended early.");
    else show(state, "done", "Done.");
  } catch (err) {
    show(state, "failed", `Failed: ${err}`);
  } finally {
    button.disabled = false;
  }
}

document.addEventListener("DOMContentLoaded", () => {
  for (const form of document.querySelectorAll("form[data-playground]")) {
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      run(form);
    });
  }
});
