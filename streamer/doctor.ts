/** `pgrelay doctor` (being written). */
export async function doctorCommand(_argv: string[]): Promise<number> {
  process.stderr.write('pgrelay doctor: not available yet\n');
  return 2;
}
