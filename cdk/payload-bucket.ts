/**
 * The claim-check bucket (`Payloads`) for changes and events too large for a message, and the
 * grants around it that more than one part needs.
 *
 * Every source writes under `pgrelay/<sourceId>/` (sourcePayloadPrefix); consumers read
 * anything under `pgrelay/` (grantPayloadRead). The grants of the streamer and the transform
 * on their own prefix are made where those are created.
 */
import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import * as s3 from 'aws-cdk-lib/aws-s3';
import type { Construct } from 'constructs';
import { DEFAULTS, payloadExpiry } from './defaults.ts';
import { acknowledge, bucketPrefixFinding, NAG_REASONS } from './nag.ts';

/** Creates `Payloads` in the relay's scope; server access logs go to `accessLogsBucket` when given. */
export function createPayloadBucket(scope: Construct, accessLogsBucket: s3.IBucket | undefined): s3.Bucket {
  const bucket = new s3.Bucket(scope, 'Payloads', {
    encryption: s3.BucketEncryption.S3_MANAGED,
    enforceSSL: true,
    blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
    objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
    // An object must outlive every message that can still point at it: the changes queue, its
    // DLQ (FIFO resets the age on redrive), then the nodes queue and its DLQ.
    lifecycleRules: [{ expiration: payloadExpiry(), abortIncompleteMultipartUploadAfter: Duration.days(1) }],
    removalPolicy: RemovalPolicy.RETAIN,
    ...(accessLogsBucket !== undefined ? { serverAccessLogsBucket: accessLogsBucket, serverAccessLogsPrefix: 'pgrelay-payloads/' } : {}),
  });
  if (accessLogsBucket === undefined) acknowledge(bucket, 'S1', NAG_REASONS.bucketAccessLogs);
  return bucket;
}

/** Where one source's streamer and transform write: `pgrelay/<sourceId>/`. */
export function sourcePayloadPrefix(sourceId: string): string {
  return `${DEFAULTS.payloadPrefix}${sourceId}/`;
}

/**
 * Without s3:ListBucket, S3 answers a missing (expired) object with 403 instead of 404, and a
 * reader could not tell "gone" from "not allowed"; listing is limited to the prefix.
 */
export function grantPrefixListing(bucket: s3.IBucket, grantee: iam.IGrantable, prefix: string): void {
  grantee.grantPrincipal.addToPrincipalPolicy(
    new iam.PolicyStatement({ actions: ['s3:ListBucket'], resources: [bucket.bucketArn], conditions: { StringLike: { 's3:prefix': [`${prefix}*`] } } }),
  );
}

/** Events too large for their channel arrive as references into the payload bucket; nodeHandler fetches them. */
export function grantPayloadRead(bucket: s3.Bucket, fn: lambda.IFunction): void {
  fn.addToRolePolicy(new iam.PolicyStatement({ actions: ['s3:GetObject'], resources: [bucket.arnForObjects(`${DEFAULTS.payloadPrefix}*`)] }));
  grantPrefixListing(bucket, fn, DEFAULTS.payloadPrefix);
  if (fn.role !== undefined) acknowledge(fn.role, bucketPrefixFinding(bucket, DEFAULTS.payloadPrefix), NAG_REASONS.payloadPrefix);
}
