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
