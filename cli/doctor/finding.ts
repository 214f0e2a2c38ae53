/** What every doctor check produces: a Finding, its Severity, and the Fix to paste. */

/**
 * `ok`: nothing to do. `warn`: streaming works, but something deserves attention.
 * `block`: the streamer would stop or lose changes. `error`: the check itself could not run.
 */
export type Severity = 'ok' | 'warn' | 'block' | 'error';

export interface Fix {
  /** SQL to run as it is (statements end in `;`). */
  sql?: string;
  /** A change made outside SQL: RDS/Aurora parameter group, Cloud SQL flag, Azure server parameter. */
  parameterGroup?: string;
  note?: string;
}

export interface Finding {
  /** Stable: `check` or `check:subject` (`table.key:public.orders`, `slot:pgrelay_default`). */
  id: string;
  severity: Severity;
  /** One line: what was found. */
  title: string;
  /** Why it matters, with the numbers. */
  detail: string;
  fix?: Fix;
}
