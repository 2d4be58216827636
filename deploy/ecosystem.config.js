// emcee under PM2, for hosts that already run PM2 (deploy/README.md, "PM2").
//
//   install -m 0755 target/release/emcee /usr/local/bin/emcee
//   install -D -m 0644 deploy/emcee.toml /etc/emcee/emcee.toml
//   pm2 start deploy/ecosystem.config.js && pm2 save
//
// emcee is a native binary, not a Node.js script: `interpreter: "none"` runs it
// directly, in fork mode (one process; PM2's cluster mode is for Node.js only, and
// two emcee processes cannot share one data dir: the second exits 3).
//
// Stopping: PM2 sends SIGINT, which emcee treats as SIGTERM (stop accepting, drain
// in-flight calls for limits.shutdown_grace_ms, 10 s in deploy/emcee.toml, drop
// connections still open 2 s later, flush storage, exit 0), then SIGKILL after
// kill_timeout. So kill_timeout sits above grace + 2 s + the final flush
// (storage.flush_timeout_ms, 5 s): 20 s, as the systemd unit's TimeoutStopSec.
//
// Restarts: PM2 restarts emcee whenever it exits (exit 3 after a full disk was freed
// is a request to be restarted: README "Data files"), waiting 100 ms, then 150 ms,
// ~225 ms ... up to 15 s between attempts while it keeps failing
// (exp_backoff_restart_delay), and back to none once it has run for 30 s.
// A bad configuration exits 2 at once every time: `pm2 logs emcee` shows the line.
//
// Logs: stderr carries emcee's JSON lines (they have their own `ts`; PM2 adds none);
// stdout is empty for `serve`. Rotate them with pm2-logrotate.
module.exports = {
  apps: [
    {
      name: "emcee",
      script: "/usr/local/bin/emcee",
      args: ["serve", "--config", "/etc/emcee/emcee.toml"],
      interpreter: "none",
      exec_mode: "fork",
      instances: 1,
      cwd: "/var/lib/emcee",
      autorestart: true,
      exp_backoff_restart_delay: 100,
      kill_timeout: 20000,
      treekill: true,
      watch: false,
      out_file: "/var/log/emcee/out.log",
      error_file: "/var/log/emcee/emcee.log",
      merge_logs: true,
      time: false,
      env: {
        EMCEE_DATA_DIR: "/var/lib/emcee",
        EMCEE_LOG: "info",
      },
    },
  ],
};
