// finer-traits web app: map overlays on a photo page, and keyboard curation of the trait queue.
// Plain JavaScript, no build step. Every data-changing request carries the page's cross-site token.
"use strict";

const csrf = () => document.body.dataset.csrf;

function setupOverlay() {
  const overlay = document.getElementById("overlay");
  const slider = document.getElementById("opacity");
  if (overlay && slider) {
    slider.addEventListener("input", () => { overlay.style.opacity = slider.value / 100; });
    document.querySelectorAll("input[name=map]").forEach((radio) => radio.addEventListener("change", () => {
      if (radio.value === "none") { overlay.hidden = true; return; }
      overlay.hidden = false;
      overlay.src = overlay.dataset.base + radio.value + ".png";
      overlay.dataset.map = radio.value;
    }));
  }
  const regions = document.getElementById("show-regions");
  const svg = document.getElementById("regions");
  if (regions && svg) regions.addEventListener("change", () => { svg.style.display = regions.checked ? "" : "none"; });
}

// The queue: j/k move, a/r/u decide, n focuses the note, o opens the photo, ] next page.
async function decide(row, action) {
  const message = document.getElementById("queue-message");
  const note = row.querySelector("input.note");
  const body = new URLSearchParams({assertion_id: row.dataset.id, version: row.dataset.version, action: action,
                                    note: note ? note.value : "", csrf: csrf()});
  const res = await fetch("/curate", {method: "POST", body: body,
                                      headers: {"Accept": "application/json", "X-CSRF-Token": csrf()}});
  const data = await res.json();
  if (!res.ok) {
    message.textContent = data.error + (data.fix ? " " + data.fix : "");
    message.className = "message bad";
    return false;
  }
  row.dataset.version = data.version;
  row.className = "st-" + data.status + " selected";
  row.querySelector(".status").textContent = data.status + " (" + data.curator + ")";
  message.textContent = "Trait " + data.id + " " + data.status + ".";
  message.className = "message";
  return true;
}

function setupQueue() {
  const rows = Array.from(document.querySelectorAll("#queue tr[data-id]"));
  if (!rows.length) return;
  let at = 0;
  const select = (i) => {
    at = Math.max(0, Math.min(rows.length - 1, i));
    rows.forEach((r, j) => r.classList.toggle("selected", j === at));
    rows[at].scrollIntoView({block: "nearest"});
  };
  rows.forEach((r, i) => r.addEventListener("click", () => select(i)));
  select(0);
  document.addEventListener("keydown", async (ev) => {
    if (ev.target.matches("input, select, textarea")) {
      if (ev.key === "Escape") ev.target.blur();
      return;
    }
    if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
    const row = rows[at];
    const actions = {a: "accept", r: "reject", u: "reset"};
    if (ev.key === "j" || ev.key === "ArrowDown") { select(at + 1); ev.preventDefault(); }
    else if (ev.key === "k" || ev.key === "ArrowUp") { select(at - 1); ev.preventDefault(); }
    else if (actions[ev.key]) { if (await decide(row, actions[ev.key])) select(at + 1); }
    else if (ev.key === "n") { row.querySelector("input.note").focus(); ev.preventDefault(); }
    else if (ev.key === "o") { window.location = row.dataset.href; }
    else if (ev.key === "]") { const next = document.getElementById("next-page"); if (next) window.location = next.href; }
  });
}

document.addEventListener("DOMContentLoaded", () => { setupOverlay(); setupQueue(); });
