/**
 * Byte counts for people (status lines, doctor findings, the npm start status): binary units,
 * one decimal below 100 of a unit. One rule everywhere, so the same lag reads the same in
 * every tool.
 */
export function formatBytes(bytes: number): string {
  const sign = bytes < 0 ? '-' : '';
  let value = Math.abs(bytes);
  if (value < 1024) return `${sign}${value} bytes`;
  for (const unit of ['KiB', 'MiB', 'GiB', 'TiB']) {
    value /= 1024;
    if (value < 1024 || unit === 'TiB') return `${sign}${value < 100 ? value.toFixed(1) : Math.round(value)} ${unit}`;
  }
  return `${sign}${value} TiB`;
}
