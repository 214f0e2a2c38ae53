/**
 * Child process: the SQS emulator (fauxqs, loopback only) in its own process, so its request
 * handling never shares the measured streamer's event loop. Prints `{"endpoint": ...}` once
 * listening; stops on SIGTERM/SIGINT or when the bench goes away (stdin closes).
 */
import { startTestSqs } from '#test/helpers/sqs.ts';

const sqs = await startTestSqs();
const stop = () => {
  void sqs.stop().finally(() => process.exit(0));
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
process.stdin.on('end', stop);
process.stdin.on('error', stop);
process.stdin.resume();
process.stdout.write(`${JSON.stringify({ endpoint: sqs.endpoint })}\n`);
