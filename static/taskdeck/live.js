/* Taskdeck's live admin pages.
 *
 * A page marks its live parts with data-live-fragment="name" inside one [data-live-src] element.
 * The page listens on the WebSocket /ws/tasks/ (filtered by data-live-task / data-live-run);
 * each event makes it ask data-live-src for fresh fragments, which the server renders (and
 * escapes) with the same templates as the page itself. Nothing here builds HTML from data:
 * captured output is appended as text nodes.
 *
 * If the socket drops, the page stays a plain page (what was true when it loaded), polls every
 * few seconds, and reconnects with a growing delay. 4401/4403 mean "not allowed": no retries.
 */
(function () {
  "use strict";

  const DEBOUNCE_MS = 250;
  const OFFLINE_POLL_MS = 5000;
  const MAX_LOG_CHARS = 512 * 1024;

  function initLive(root) {
    const states = document.querySelectorAll("[data-live-state]");
    const log = root.querySelector("[data-live-log]");
    const runId = root.dataset.liveRun || "";
    const activePoll = Number(root.dataset.livePoll || 0);
    let active = activePoll > 0;
    let socket = null;
    let attempts = 0;
    let timer = null;
    let inFlight = false;
    let again = false;

    function setState(text, state) {
      states.forEach((element) => {
        element.textContent = text;
        element.dataset.state = state;
      });
    }

    function keys() {
      const found = new Set();
      root.querySelectorAll("[data-live-fragment]").forEach((element) => {
        const name = element.dataset.liveFragment;
        const colon = name.indexOf(":");
        if (colon > 0) found.add(name.slice(colon + 1));
      });
      return found;
    }

    // On a list, an event marks its task dirty and the refresh asks for the dirty rows only;
    // null means "everything" (first load, reconnects, polls).
    let dirty = null;

    function sourceUrl() {
      const url = new URL(root.dataset.liveSrc, window.location.href);
      if ("liveKeys" in root.dataset) {
        const wanted = dirty === null ? keys() : dirty;
        url.searchParams.set("keys", Array.from(wanted).join(","));
        dirty = new Set();
      }
      if (log) url.searchParams.set("log_offset", log.dataset.logOffset || "0");
      return url;
    }

    function schedule(delay) {
      if (timer !== null) return;
      timer = window.setTimeout(() => {
        timer = null;
        refresh();
      }, delay === undefined ? DEBOUNCE_MS : delay);
    }

    async function refresh() {
      if (inFlight) {
        again = true;
        return;
      }
      inFlight = true;
      try {
        const response = await fetch(sourceUrl(), {
          credentials: "same-origin",
          headers: { Accept: "application/json" },
        });
        if (response.ok) apply(await response.json());
        else dirty = null;
      } catch (error) {
        // Server unreachable: the page keeps what it shows; the next event or poll asks for all.
        dirty = null;
      } finally {
        inFlight = false;
        if (again) {
          again = false;
          schedule();
        }
      }
    }

    function apply(body) {
      for (const [name, html] of Object.entries(body.fragments || {})) {
        root.querySelectorAll('[data-live-fragment="' + CSS.escape(name) + '"]').forEach((element) => {
          if (element.tdHtml === html) return; // unchanged: keep focus and selection
          element.tdHtml = html;
          element.innerHTML = html; // rendered and escaped by the server's templates
        });
      }
      if (log && body.log) appendLog(body.log);
      if (typeof body.active === "boolean") active = body.active;
      root.dispatchEvent(new CustomEvent("taskdeck:refreshed", { detail: body }));
    }

    function appendLog(chunk) {
      const atBottom = log.scrollTop + log.clientHeight >= log.scrollHeight - 8;
      if (chunk.text) {
        log.append(document.createTextNode(chunk.text));
        if (log.textContent.length > MAX_LOG_CHARS) log.textContent = log.textContent.slice(-MAX_LOG_CHARS / 2);
      }
      log.dataset.logOffset = String(chunk.offset);
      if (atBottom) log.scrollTop = log.scrollHeight;
      if (chunk.offset < chunk.size) schedule(0); // more output waiting
    }

    function showProgress(data) {
      const percent = data.progress && data.progress.percent;
      if (typeof percent !== "number") return;
      root.querySelectorAll(".td-progress-bar").forEach((bar) => {
        bar.style.width = percent + "%";
      });
      root.querySelectorAll("[data-progress-percent]").forEach((element) => {
        element.textContent = Math.round(percent) + "%";
      });
    }

    function refreshAll(delay) {
      dirty = null;
      schedule(delay);
    }

    function onEvent(frame) {
      const data = frame.data || {};
      if ("liveKeys" in root.dataset) {
        if (!keys().has(data.task_id)) return;
        if (dirty !== null) dirty.add(data.task_id);
      }
      if (frame.event === "task:progress" && data.run_id === runId) showProgress(data);
      schedule();
    }

    function connect() {
      const query = new URLSearchParams();
      if (root.dataset.liveTask) query.set("task", root.dataset.liveTask);
      if (runId) query.set("run", runId);
      const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
      socket = new WebSocket(scheme + "//" + window.location.host + "/ws/tasks/?" + query.toString());
      socket.addEventListener("open", () => {
        attempts = 0;
        setState("live", "live");
        refreshAll(0); // catch up with whatever happened while we were away
      });
      socket.addEventListener("message", (message) => {
        let frame = null;
        try {
          frame = JSON.parse(message.data);
        } catch (error) {
          return;
        }
        onEvent(frame);
      });
      socket.addEventListener("close", (event) => {
        socket = null;
        if (event.code === 4401 || event.code === 4403) {
          setState("live updates not allowed", "off");
          return;
        }
        const delay = Math.min(15000, 1000 * 2 ** attempts);
        attempts += 1;
        setState("reconnecting…", "retry");
        window.setTimeout(connect, delay);
      });
    }

    // Activity is written without an event of its own: while the run is active, look anyway.
    if (activePoll > 0) {
      window.setInterval(() => {
        if (active) refreshAll(0);
      }, activePoll);
    }
    window.setInterval(() => {
      if (socket === null || socket.readyState !== WebSocket.OPEN) refreshAll(0);
    }, OFFLINE_POLL_MS);

    if (log) log.scrollTop = log.scrollHeight;
    setState("connecting…", "retry");
    connect();
    root.taskdeckLive = { refresh, socket: () => socket }; // for tests and the console
  }

  function initSchedulePreview(list) {
    const names = ["cron_string", "timezone", "interval", "interval_unit"];
    let timer = null;

    function item(text, className) {
      const li = document.createElement("li");
      li.textContent = text;
      if (className) li.className = className;
      return li;
    }

    async function update() {
      const query = new URLSearchParams();
      names.forEach((name) => {
        const input = document.getElementById("id_" + name);
        if (input) query.set(name, input.value);
      });
      try {
        const response = await fetch(list.dataset.schedulePreview + "?" + query.toString(), {
          credentials: "same-origin",
        });
        if (!response.ok) return;
        const body = await response.json();
        const errors = Object.values(body.errors || {}).flat();
        if (errors.length) {
          list.replaceChildren(...errors.map((error) => item(error, "td-error")));
        } else if (!body.times.length) {
          list.replaceChildren(item("No scheduled runs: the task runs on demand.", "td-muted"));
        } else {
          list.replaceChildren(...body.times.map((time) => item(time.text)));
        }
      } catch (error) {
        // Offline: the list keeps the last preview.
      }
    }

    names.forEach((name) => {
      const input = document.getElementById("id_" + name);
      if (!input) return;
      ["input", "change"].forEach((type) =>
        input.addEventListener(type, () => {
          window.clearTimeout(timer);
          timer = window.setTimeout(update, 300);
        }),
      );
    });
  }

  document.addEventListener("change", (event) => {
    if (event.target.matches && event.target.matches("[data-submit-on-change]")) event.target.form.submit();
  });

  function start() {
    document.querySelectorAll("[data-live-src]").forEach(initLive);
    document.querySelectorAll("[data-schedule-preview]:not([data-schedule-preview=''])").forEach(initSchedulePreview);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
