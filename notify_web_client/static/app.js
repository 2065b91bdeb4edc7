// The notification page: connection state, live notifications with an unread count, a task with
// its progress bar. The token comes from the page's URL (`?token=...`), a new one through
// `window.setNotifyToken(token)`; `?heartbeat=S` tells the client the server's heartbeat
// interval (30 s by default).

import { TASKS_PATH, TOKEN_PARAM, WS_TASKS_PATH } from "./contract.js";
import { NotificationClient } from "./notify-client.js";

const params = new URLSearchParams(location.search);
let token = params.get("token") || "";
const client = new NotificationClient({
  base: location.origin,
  token,
  heartbeatIntervalMs: 1000 * Number(params.get("heartbeat") || 30),
});

const $ = (id) => document.getElementById(id);
const list = $("notifications");
let unread = 0;

function setUnread(n) {
  unread = n;
  $("unread").textContent = String(n);
}

client.addEventListener("state", (event) => {
  const { state, code } = event.detail;
  $("state").textContent = code && state !== "open" ? `${state} (${code})` : state;
  $("state").className = `state ${state}`;
});

client.addEventListener("notification", (event) => {
  const item = event.detail;
  const li = document.createElement("li");
  li.dataset.id = item.id;
  li.className = "unread";
  li.append(item.title || "(no title)");
  if (item.content) {
    const small = document.createElement("small");
    small.textContent = item.content;
    li.append(small);
  }
  list.prepend(li);
  setUnread(unread + 1);
});

$("mark-read").addEventListener("click", () => {
  for (const li of list.querySelectorAll("li.unread")) li.classList.remove("unread");
  setUnread(0);
});

$("sign-out").addEventListener("click", () => client.signOut());

$("start-task").addEventListener("click", async () => {
  const answer = await fetch(TASKS_PATH, {
    method: "POST",
    headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
    body: JSON.stringify({ total_steps: 10, step_interval_ms: 300 }),
  });
  if (!answer.ok) {
    $("task-message").textContent = `could not start a task: HTTP ${answer.status}`;
    return;
  }
  const { task_id: taskId } = await answer.json();
  const url = new URL(location.origin.replace(/^http/, "ws") + WS_TASKS_PATH.replace("{task_id}", taskId));
  url.searchParams.set(TOKEN_PARAM, token);
  const ws = new WebSocket(url);
  ws.onmessage = (event) => {
    const frame = JSON.parse(event.data);
    const data = frame.data || {};
    if (typeof data.progress === "number") $("task-progress").value = data.progress;
    if (data.message) $("task-message").textContent = `${frame.type}: ${data.message}`;
  };
});

window.notifyClient = client; // for a person at the console
// The app's token refresh hands the new token here (and the check's --token-hook calls it).
window.setNotifyToken = (fresh) => {
  token = fresh;
  client.setToken(fresh);
};
client.start();
