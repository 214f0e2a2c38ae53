/**
 * How pgrelay's processes reach a source database: the security group the streamer tasks and
 * the monitor share (`SecurityGroup`), the ingress rule into the database's security group
 * when one is given, and the connection settings both put in their config document.
 */
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import type { Construct } from 'constructs';
import type { StreamerConfigInput } from '#core/config.ts';
import type { ResolvedSource } from './props.ts';

/** Creates `SecurityGroup` in the relay's scope: outbound only, to the database and AWS APIs. */
export function createSecurityGroup(scope: Construct, vpc: ec2.IVpc): ec2.SecurityGroup {
  return new ec2.SecurityGroup(scope, 'SecurityGroup', {
    vpc,
    description: 'pgrelay streamer tasks and monitor: outbound to the database and AWS APIs',
    allowAllOutbound: true,
  });
}

/** Lets the streamer and the monitor into the database's security group, when the source names one. */
export function allowIntoDatabase(source: ResolvedSource, securityGroup: ec2.ISecurityGroup): void {
  const db = source.database;
  if (db.securityGroup !== undefined) {
    db.securityGroup.addIngressRule(securityGroup, ec2.Port.tcp(db.port), `pgrelay ${source.sourceId}: streamer and monitor to PostgreSQL`);
  }
}

/** The `database` part of the streamer's and the monitor's config: where, and which secret holds the login. */
export function databaseConnection(db: ResolvedSource['database']): StreamerConfigInput['database'] {
  return {
    host: db.host,
    port: db.port,
    name: db.name,
    secretArn: db.secret.secretArn,
    sslMode: db.sslMode,
    ...(db.caBundle !== undefined ? { caBundle: db.caBundle } : {}),
  };
}
