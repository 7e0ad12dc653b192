/** How workflows put a caught failure into words (results, logs, the Web UI). */

/** A failure's message with its causes ("Child Workflow execution failed: Activity task failed: …: the real reason"). */
export function describeFailure(err: unknown): string {
  const parts: string[] = [];
  let e: unknown = err;
  for (let depth = 0; e instanceof Error && depth < 5; depth++) {
    parts.push(e.message);
    e = e.cause;
  }
  return parts.length ? parts.join(': ') : String(err);
}
