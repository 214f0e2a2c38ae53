/**
 * The streamer's container image for ECS Fargate: the Docker build context prebuilt by
 * pgrelay's build (scripts/bundles.ts: the `pgrelay` command, its health check, their
 * licences and a Dockerfile on a Node 22 base image), for
 * `ecs.ContainerImage.fromAsset(directory, { platform: Platform.LINUX_ARM64 })`, and the facts
 * about the image the task definition needs. The context lives in the package; the CDK copies
 * it into the cloud assembly, and building the image needs Docker only at deploy.
 */
import { STREAMER_NODE_OPTIONS } from '#streamer/node-options.ts';
import { prebuiltBundle } from './prebuilt.ts';

/**
 * Node 22 on Debian bookworm, slim. ECR Public's mirror of the Docker official image, so
 * builds in AWS are not throttled by Docker Hub's pull limits. The tag pins Node's major and
 * the Debian release; patch releases (security fixes) arrive on the next build.
 */
export const STREAMER_BASE_IMAGE = 'public.ecr.aws/docker/library/node:22-bookworm-slim';

/** The file `pgrelay run` rewrites every 10 s and the health check reads (streamer/process.ts). */
export const STREAMER_HEALTH_FILE = '/tmp/pgrelay-health';

/** The ECS container health check: exit 0 while the streamer's event loop turns. */
export const STREAMER_HEALTH_CHECK_COMMAND: readonly string[] = ['CMD', 'node', '/app/health-check.mjs'];

/** What the image sets with ENV. Already in the image; a task definition need not repeat it. */
export const STREAMER_IMAGE_ENVIRONMENT: Readonly<Record<string, string>> = {
  NODE_OPTIONS: STREAMER_NODE_OPTIONS.join(' '),
  NODE_ENV: 'production',
  PGRELAY_HEALTH_FILE: STREAMER_HEALTH_FILE,
};

export interface StreamerImage {
  /** The Docker build context: Dockerfile, pgrelay.mjs, health-check.mjs, their maps and licences. */
  directory: string;
  /** For the ECS container definition's health check. */
  healthCheckCommand: string[];
  /** The environment the image sets (STREAMER_IMAGE_ENVIRONMENT). */
  environment: Record<string, string>;
}

/** The prebuilt image context and what the task definition needs to know of the image. */
export function streamerImage(): StreamerImage {
  return {
    directory: prebuiltBundle('streamer'),
    healthCheckCommand: [...STREAMER_HEALTH_CHECK_COMMAND],
    environment: { ...STREAMER_IMAGE_ENVIRONMENT },
  };
}
