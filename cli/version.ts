/**
 * The version of the pgrelay package this command belongs to (its package.json), or, in the
 * container's bundle, which has no package.json, the version written into it at build time.
 */
import { pgrelayPackage } from '#shared/package-root.ts';

declare const PGRELAY_VERSION: string | undefined;

export function packageVersion(): string {
  if (typeof PGRELAY_VERSION === 'string') return PGRELAY_VERSION;
  return pgrelayPackage()?.version ?? 'unknown';
}
