/**
 * Checks a document against the CloudWatch embedded metric format specification: a root
 * `_aws` with a millisecond Timestamp and CloudWatchMetrics directives; each directive has a
 * Namespace, Dimensions (arrays of at most 30 names) and Metrics (at most 100, each with a
 * Name and an allowed Unit); every dimension is a root string member and every metric a root
 * number (or array of at most 100 numbers). Returns the problems found.
 */
const UNITS = new Set([
  'Seconds', 'Microseconds', 'Milliseconds', 'Bytes', 'Kilobytes', 'Megabytes', 'Gigabytes', 'Terabytes',
  'Bits', 'Kilobits', 'Megabits', 'Gigabits', 'Terabits', 'Percent', 'Count', 'Bytes/Second',
  'Kilobytes/Second', 'Megabytes/Second', 'Gigabytes/Second', 'Terabytes/Second', 'Bits/Second',
  'Kilobits/Second', 'Megabits/Second', 'Gigabits/Second', 'Terabits/Second', 'Count/Second', 'None',
]);

export function emfProblems(doc: unknown): string[] {
  const problems: string[] = [];
  if (typeof doc !== 'object' || doc === null) return ['not an object'];
  const root = doc as Record<string, unknown>;
  const aws = root._aws as Record<string, unknown> | undefined;
  if (!aws || typeof aws !== 'object') return ['no _aws member'];
  if (typeof aws.Timestamp !== 'number' || !Number.isInteger(aws.Timestamp) || aws.Timestamp < 1e12) problems.push('_aws.Timestamp must be epoch milliseconds');
  const directives = aws.CloudWatchMetrics;
  if (!Array.isArray(directives) || directives.length === 0) return [...problems, '_aws.CloudWatchMetrics must be a non-empty array'];
  for (const [i, d] of directives.entries()) {
    const dir = d as Record<string, unknown>;
    const ns = dir.Namespace;
    if (typeof ns !== 'string' || ns.length < 1 || ns.length > 255 || ns.startsWith('AWS/')) problems.push(`directive ${i}: bad Namespace`);
    if (!Array.isArray(dir.Dimensions)) problems.push(`directive ${i}: Dimensions must be an array`);
    else {
      for (const set of dir.Dimensions) {
        if (!Array.isArray(set) || set.length > 30) problems.push(`directive ${i}: a dimension set must be an array of at most 30 names`);
        else {
          for (const name of set) {
            if (typeof name !== 'string') problems.push(`directive ${i}: dimension name ${String(name)} is not a string`);
            else if (typeof root[name] !== 'string') problems.push(`dimension ${name} must be a root string member`);
            else if ((root[name] as string).length === 0 || (root[name] as string).length > 1024) problems.push(`dimension ${name} value length`);
          }
        }
      }
    }
    if (!Array.isArray(dir.Metrics) || dir.Metrics.length > 100) problems.push(`directive ${i}: Metrics must be an array of at most 100`);
    else {
      for (const m of dir.Metrics as Record<string, unknown>[]) {
        if (typeof m.Name !== 'string' || m.Name.length < 1 || m.Name.length > 1024) {
          problems.push(`directive ${i}: metric without a Name`);
          continue;
        }
        if (m.Unit !== undefined && !UNITS.has(m.Unit as string)) problems.push(`metric ${m.Name}: unit ${String(m.Unit)} not allowed`);
        const v = root[m.Name];
        const ok = typeof v === 'number' && Number.isFinite(v);
        const okArray = Array.isArray(v) && v.length <= 100 && v.every((x) => typeof x === 'number' && Number.isFinite(x));
        if (!ok && !okArray) problems.push(`metric ${m.Name} must be a root number`);
      }
    }
  }
  return problems;
}
