// The exit codes of soma-verify (README, "Exit codes"; the --help epilog says the same).
export const EXIT = {
  ok: 0,
  /** A check failed (or warned, under --strict). */
  failed: 1,
  /** Usage or configuration error: nothing ran (also serve mode that cannot start). */
  usage: 2,
  /** --wait DURATION ran out before every check passed (--consecutive times in a row). */
  waitExpired: 3,
  /** Ctrl-C (128 + SIGINT); a signal n gives 128+n. The report of what ran is still printed. */
  interrupted: 130,
} as const;

/**
 * A verification's exit code is at least `failed` until its verdict is known, and never below the
 * verdict after: an 'exit' listener that sets exitCode 0 or calls process.exit(0), a direct
 * process.reallyExit(0) from a plugin, or an event loop that runs dry before the report cannot end
 * a failed run with 0. process.reallyExit is where every process.exit ends, listeners included.
 */
export function holdExitFloor(): { verdict(code: number): void } {
  let floor: number = EXIT.failed;
  const proc = process as unknown as { reallyExit(code?: number): never };
  const reallyExit = proc.reallyExit.bind(process);
  proc.reallyExit = (code) => reallyExit(code ? code : floor);
  process.exitCode = floor;
  process.once('beforeExit', () => {
    process.stderr.write('soma-verify: the run ended before its report (internal error): the gate fails\n');
    // Not process.exit: while checks run it is guarded, and throws.
    reallyExit(floor || EXIT.failed);
  });
  return {
    verdict: (code) => {
      floor = code;
      process.exitCode = code;
    },
  };
}
