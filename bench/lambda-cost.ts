/**
 * What the transform's measured work would cost on AWS Lambda, per million changes.
 *
 * Lambda bills every invocation (a request) and its duration × configured memory (GB-seconds),
 * and gives a function CPU in proportion to its memory: "At 1,769 MB, a function has the
 * equivalent of one vCPU (one vCPU-second of credits per second)" (AWS Lambda Developer Guide,
 * "Configure Lambda function memory"). The quota covers every thread of the process, so a
 * handler that needs C ms of CPU (its garbage collector's threads included) takes at least
 * C × 1769 / memoryMb ms below 1,769 MB, and about C at 1,769 MB (a single-threaded handler
 * gains nothing above it).
 *
 *   duration(memoryMb)   = measured CPU ms × 1769 / min(memoryMb, 1769)
 *   invocations per 1M   = 1e6 / changes per invocation
 *   $ per 1M changes     = invocations × (duration s × memoryMb / 1024 × GB-second price + request price)
 *
 * So up to 1,769 MB the GB-seconds of CPU-bound work do not depend on the memory setting (less
 * memory, proportionally longer): only latency does. Not included: the time an invocation waits
 * for SQS and EventBridge to answer (the `instant` row answers at once; the bench's latency
 * probe counts the calls it waits for in sequence), the per-core speed of Graviton (arm64)
 * against the machine measured here, cold starts, and every other service's charges (SQS
 * requests, EventBridge events).
 */

/** A full vCPU's worth of CPU quota (AWS Lambda Developer Guide, "Configure Lambda function memory"). */
export const FULL_VCPU_MB = 1769;

/**
 * arm64, US East (N. Virginia), first pricing tier (up to 7.5 billion GB-seconds a month).
 * aws.amazon.com/lambda/pricing renders its rate tables in the browser, so these come from
 * transcriptions of it, which agree with each other and with AWS's own statements.
 */
export const LAMBDA_ARM64_US_EAST_1 = {
  architecture: 'arm64',
  region: 'us-east-1',
  usdPerGbSecond: 0.0000133334,
  usdPerMillionRequests: 0.2,
  sources: [
    'https://cloudchipr.com/blog/aws-lambda-pricing ("AWS Lambda Pricing Breakdown: Ultimate Guide 2024", US East (N. Virginia): Arm $0.0000133334 per GB-second for the first 7.5 billion GB-seconds/month)',
    'https://git.mcrn.ar/mariano/lambda_local_runner/src/branch/main/docs/lambdas-md/lambda-13-cost.md (2026-05-11: arm64 $0.0000133334/GB-s, requests $0.20/1M)',
    'https://aws.amazon.com/blogs/aws/aws-lambda-functions-powered-by-aws-graviton2-processor-run-your-functions-on-arm-and-get-up-to-34-better-price-performance/ (2021-09-29, updated 2023-06-19: Arm duration charges 20% below x86: 0.8 × $0.0000166667 = $0.0000133334)',
    'https://aws.amazon.com/blogs/compute/introducing-tiered-pricing-for-aws-lambda/ (2022: arm64 tiers 0–7.5 billion GB-s at the base price)',
    'http://www.headinthecloud.qualitycloudsystems.com/2020/12/new-for-aws-lambda-1ms-billing.html (a copy of the AWS News Blog post of 2020-12-01, "New for AWS Lambda – 1ms Billing Granularity": $0.20 per 1M requests, US East (N. Virginia))',
  ],
  checked: '2026-11-21',
} as const;

/** The memory settings the bench prices: the transform's setting, and the one with a full vCPU. */
export const PRICED_MEMORY_MB = [1024, FULL_VCPU_MB] as const;

export interface InvocationCost {
  memoryMb: number;
  /** The fraction of a vCPU the setting gets (at most 1 for a single-threaded handler). */
  vcpu: number;
  /** Estimated billed duration of one invocation, waiting for the outputs not included. */
  durationMs: number;
  invocationsPerMillionChanges: number;
  gbSecondsPerMillionChanges: number;
  usdDurationPerMillionChanges: number;
  usdRequestsPerMillionChanges: number;
  usdPerMillionChanges: number;
}

export function lambdaCost(
  measured: { cpuMs: number; changesPerInvocation: number },
  memoryMb: number,
  price: { usdPerGbSecond: number; usdPerMillionRequests: number } = LAMBDA_ARM64_US_EAST_1,
): InvocationCost {
  const vcpu = Math.min(memoryMb, FULL_VCPU_MB) / FULL_VCPU_MB;
  const durationMs = measured.cpuMs / vcpu;
  const invocations = 1e6 / measured.changesPerInvocation;
  const gbSeconds = invocations * (durationMs / 1000) * (memoryMb / 1024);
  const usdDuration = gbSeconds * price.usdPerGbSecond;
  const usdRequests = (invocations * price.usdPerMillionRequests) / 1e6;
  return {
    memoryMb,
    vcpu,
    durationMs,
    invocationsPerMillionChanges: invocations,
    gbSecondsPerMillionChanges: gbSeconds,
    usdDurationPerMillionChanges: usdDuration,
    usdRequestsPerMillionChanges: usdRequests,
    usdPerMillionChanges: usdDuration + usdRequests,
  };
}
