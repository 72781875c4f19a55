// Preloaded into a measured node process (NODE_OPTIONS=--require): writes its peak resident
// memory (KiB) and the CPU time it used (ms) to BENCH_RSS_FILE when it exits, however it exits.
// CPU time is the figure to read on a busy machine, where wall time also counts waiting for a core.
const { writeFileSync } = require('node:fs');
process.on('exit', () => {
  try {
    const u = process.resourceUsage();
    writeFileSync(process.env.BENCH_RSS_FILE, JSON.stringify({ maxRSS: u.maxRSS, cpuMs: (u.userCPUTime + u.systemCPUTime) / 1000 }));
  } catch {}
});
