/**
 * Where the database runs (self-hosted, Amazon RDS, Aurora, Cloud SQL, Azure) and how a server
 * setting is changed there: ALTER SYSTEM, a parameter group, a database flag or a server
 * parameter, with or without a restart. The platform is recognised by the roles, settings and
 * functions each provider adds to PostgreSQL (PLATFORM_SQL reads them). Every family that
 * suggests a setting change phrases it with settingFix, so the fix can be pasted as it is.
 */
import type pg from 'pg';
import type { Fix } from './finding.ts';
import { singleRow } from '#shared/single-row.ts';

export type Platform = 'self-hosted' | 'rds' | 'aurora' | 'cloudsql' | 'azure';

export interface PlatformFacts {
  /** Names of settings that exist on the server, at least those starting with rds., aurora., apg, cloudsql., azure. */
  settings: string[];
  /** Which of the providers' well-known roles exist. */
  roles: string[];
  /** The aurora_version() function exists. */
  auroraFunction: boolean;
}

/** Role names the query for PlatformFacts.roles asks about. */
export const PLATFORM_ROLES = ['rds_superuser', 'rds_replication', 'cloudsqlsuperuser', 'azure_pg_admin', 'azuresu'];

const PLATFORM_SQL = `
SELECT ARRAY(SELECT name::text FROM pg_settings WHERE name ~ '^(rds|aurora|apg|cloudsql|azure)[._]') AS settings,
       ARRAY(SELECT rolname::text FROM pg_roles WHERE rolname = ANY($1::text[])) AS roles,
       EXISTS (SELECT 1 FROM pg_proc WHERE proname = 'aurora_version') AS aurora_function`;

export async function readPlatformFacts(client: pg.Client): Promise<PlatformFacts> {
  const row = await singleRow<{ settings: string[]; roles: string[]; aurora_function: boolean }>(client, PLATFORM_SQL, [PLATFORM_ROLES]);
  return { settings: row.settings, roles: row.roles, auroraFunction: row.aurora_function };
}

/** Each provider adds its own roles and settings to PostgreSQL; their presence names the platform. */
export function detectPlatform(f: PlatformFacts): Platform {
  const setting = (prefix: string) => f.settings.some((s) => s.startsWith(prefix));
  const role = (name: string) => f.roles.includes(name);
  const rds = role('rds_superuser') || role('rds_replication') || setting('rds.');
  if (f.auroraFunction || setting('aurora') || setting('apg_')) return 'aurora';
  if (rds) return 'rds';
  if (role('cloudsqlsuperuser') || setting('cloudsql.')) return 'cloudsql';
  if (role('azure_pg_admin') || role('azuresu') || setting('azure.')) return 'azure';
  return 'self-hosted';
}

export function platformName(p: Platform): string {
  return { 'self-hosted': 'self-hosted PostgreSQL', rds: 'Amazon RDS for PostgreSQL', aurora: 'Aurora PostgreSQL', cloudsql: 'Cloud SQL for PostgreSQL', azure: 'Azure Database for PostgreSQL' }[p];
}

/**
 * How to change a server setting on each platform. `value` is SQL-ready for ALTER SYSTEM;
 * `rawValue` is what a parameter group or flag takes (plain number in the setting's unit).
 */
export function settingFix(platform: Platform, name: string, value: string, opts: { restart: boolean; rawValue?: string }): Fix {
  const raw = opts.rawValue ?? value;
  switch (platform) {
    case 'self-hosted':
      return opts.restart
        ? { sql: `ALTER SYSTEM SET ${name} = ${value};`, note: 'then restart PostgreSQL (a -c setting on the server command line overrides ALTER SYSTEM)' }
        : { sql: `ALTER SYSTEM SET ${name} = ${value};\nSELECT pg_reload_conf();` };
    case 'rds':
    case 'aurora': {
      const group = platform === 'aurora' ? 'DB cluster parameter group' : 'DB parameter group';
      return {
        parameterGroup: `${name} = ${raw} in the ${group}`,
        note: opts.restart
          ? `then reboot the ${platform === 'aurora' ? 'writer instance' : 'instance'} (the parameter is static); ALTER SYSTEM is not available on ${platformName(platform)}`
          : `applies without a reboot (dynamic parameter); ALTER SYSTEM is not available on ${platformName(platform)}`,
      };
    }
    case 'cloudsql':
      return {
        parameterGroup: `database flag ${name}=${raw}`,
        note: `gcloud sql instances patch INSTANCE --database-flags=${name}=${raw} (the list replaces every flag already set: repeat those)${opts.restart ? '; the instance restarts' : ''}`,
      };
    case 'azure':
      return {
        parameterGroup: `server parameter ${name} = ${raw}`,
        note: `az postgres flexible-server parameter set --resource-group RG --server-name SERVER --name ${name} --value ${raw}${opts.restart ? '; then az postgres flexible-server restart --resource-group RG --name SERVER' : ''}`,
      };
  }
}
