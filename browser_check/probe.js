// Installed before any script of the page: wraps WebSocket to record, black-box, what the page
// does with its notification sockets. Times are Date.now(), which the check's fake clock drives.
(() => {
  const Native = window.WebSocket;
  const pattern = new RegExp(__NOTIFY_PATH_PATTERN__);
  const probe = { attempts: [], held: 0, maxHeld: 0 };
  window.__notifyProbe = probe;
  const tell = (kind) => {
    if (typeof window.__notifyProbeEvent === "function") window.__notifyProbeEvent(kind);
  };

  class Probed extends Native {
    constructor(url, protocols) {
      super(url, protocols);
      const href = String(url);
      if (!pattern.test(new URL(href, location.href).pathname)) return;
      const record = { url: href, at: Date.now(), openedAt: null, closedAt: null, code: null,
                       closeCalledAt: null, closeCalledCode: null };
      probe.attempts.push(record);
      probe.held += 1;
      probe.maxHeld = Math.max(probe.maxHeld, probe.held);
      tell("attempt");
      let released = false;
      const release = () => {
        if (!released) {
          released = true;
          probe.held -= 1;
        }
      };
      this.addEventListener("open", () => { record.openedAt = Date.now(); tell("open"); });
      this.addEventListener("close", (event) => {
        record.closedAt = Date.now();
        record.code = event.code;
        release();
        tell("close");
      });
      const close = this.close.bind(this);
      this.close = (code, reason) => {
        if (record.closeCalledAt === null) {
          record.closeCalledAt = Date.now();
          record.closeCalledCode = code === undefined ? null : code;
        }
        release(); // the page let go of it: a socket it asked to close is no longer held
        close(code, reason);
      };
    }
  }
  window.WebSocket = Probed;
})();
