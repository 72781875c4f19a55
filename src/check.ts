// The contract between the engine and a check kind. The engine knows checks only through this
// file: a built-in kind in checks/ and a user's plugin have the same shape.

export type Status = 'pass' | 'warn' | 'fail' | 'skip';

/** One line of the report: what was checked, where, and what was found. */
export interface CheckResult {
  id: string;
  kind: string;
  service?: string;
  /** Where the check looked, free of credentials. */
  target: string;
  status: Status;
  /** The whole check, from its start to its verdict. */
  durationMs: number;
  /** The check's own network exchange, when its kind measures one (see CheckOutcome.latencyMs). */
  latencyMs?: number;
  /** The peer that gave no answer, when the kind can tell (see CheckOutcome.unanswered). */
  unanswered?: Unanswered;
  /** One line a person can act on. */
  message: string;
  details: Record<string, unknown>;
}

/** What a kind's `run` returns; the runner adds the id, kind, service, target and timing. */
export interface CheckOutcome {
  status: Exclude<Status, 'skip'> | 'skip';
  message: string;
  details?: Record<string, unknown>;
  /**
   * Milliseconds of the check's own network exchange, from the first byte it sent to the last it
   * read, when the kind can tell: the service's latency, which `durationMs` is not (that also
   * holds connection set-up, waiting for the event loop and the kind's own work).
   */
  latencyMs?: number;
  /**
   * Set on a failure when the check's peer gave no answer at all: the connection was refused,
   * the host did not resolve or had no route, the connection or the answer timed out, or the
   * connection was reset before any answer. Without it a failure counts as answered (the peer
   * is up and said "not ready", or said something wrong). `--wait` paces by it: it re-runs an
   * answered failure at a steady pace, backs off from a peer that gave no answer, and watches
   * a refused port with bare TCP connects. Not part of the printed reports.
   */
  unanswered?: Unanswered;
}

/** Where a check's peer gave no answer. */
export interface Unanswered {
  /** The host name or address the check connected to. */
  host: string;
  /** The TCP port it connected to. */
  port: number;
  /** The host refused the TCP connection (ECONNREFUSED): it is up, but nothing listens on the port yet. */
  refused: boolean;
}

export interface CheckContext {
  /** Aborted when the check's timeout, the global deadline or an interrupt comes first. */
  signal: AbortSignal;
  /** This check's own budget, in milliseconds, already capped by the global deadline. */
  timeoutMs: number;
  /** Results of the checks named in `dependsOn`, by id. */
  dependencies: ReadonlyMap<string, CheckResult>;
  /** A progress line for stderr (redacted before it is printed). */
  log(message: string): void;
}

/**
 * The Standard Schema interface (standardschema.dev), so a kind may describe its options with
 * zod, valibot, arktype or by hand. Copied, as the spec asks, instead of depending on a package.
 */
export interface StandardSchemaV1<Input = unknown, Output = Input> {
  readonly '~standard': {
    readonly version: 1;
    readonly vendor: string;
    readonly validate: (
      value: unknown,
    ) => StandardResult<Output> | Promise<StandardResult<Output>>;
    readonly types?: { readonly input: Input; readonly output: Output } | undefined;
  };
}
export type StandardResult<Output> =
  | { readonly value: Output; readonly issues?: undefined }
  | { readonly issues: ReadonlyArray<StandardIssue> };
export interface StandardIssue {
  readonly message: string;
  readonly path?: ReadonlyArray<PropertyKey | { readonly key: PropertyKey }> | undefined;
}

/** A check kind: a name, a schema for its options, a target for the report, and `run`. */
export interface CheckKind<Options = any> {
  kind: string;
  options: StandardSchemaV1<unknown, Options>;
  /** Where the check will look, for `--list` and the report (credentials are masked later). */
  target(options: Options): string;
  /**
   * Load what `run` needs (a driver) before the clock starts, so that module loading counts
   * against neither the check's latency nor its timeout. Optional; called once per kind, with the
   * options of every planned check of the kind (to load only what they need).
   */
  prepare?(planned: readonly Options[]): Promise<unknown> | undefined;
  /**
   * How long, after its signal aborts (timeout, global deadline, interrupt), the runner waits for
   * `run` to settle instead of reporting the abort at once: a smoke scenario removes what it
   * wrote in that time. Optional; without it an aborted check is reported at once.
   */
  abortGraceMs?: number;
  /**
   * True for a kind that writes (a smoke scenario): it runs once per verification, and under
   * `--wait` only after every other check passed (its dependencies among them); it is never
   * retried, so its marked data is written once.
   */
  once?: boolean;
  /** Observe, never change. Import drivers lazily (here or in `prepare`), honour `ctx.signal`. */
  run(options: Options, ctx: CheckContext): Promise<CheckOutcome>;
}

export function defineCheck<Options>(kind: CheckKind<Options>): CheckKind<Options> {
  return kind;
}
