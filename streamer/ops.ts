/** `pgrelay status`, `bootstrap`, `slot drop` (being written). */
export async function statusCommand(_argv: string[]): Promise<number> {
  process.stderr.write('pgrelay status: not available yet\n');
  return 2;
}
export async function bootstrapCommand(_argv: string[]): Promise<number> {
  process.stderr.write('pgrelay bootstrap: not available yet\n');
  return 2;
}
export async function slotCommand(_argv: string[]): Promise<number> {
  process.stderr.write('pgrelay slot: not available yet\n');
  return 2;
}
