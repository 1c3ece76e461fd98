/**
 * `npm start`: the scoring and generation service (REST on QGATE_HTTP_PORT, gRPC on
 * QGATE_GRPC_PORT) over the shipped models. All wiring is in src/server/app.ts.
 */
import { loadConfig } from './config.ts';
import { isQgateError } from './errors.ts';
import { logger } from './log.ts';
import { start } from './server/app.ts';

try {
  await start(loadConfig());
} catch (e) {
  if (isQgateError(e)) logger.fatal({ code: e.code }, e.message);
  else logger.fatal({ err: e }, 'qgate failed to start');
  process.exitCode = 1;
}
