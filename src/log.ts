import { destination, pino } from 'pino';

/**
 * The process logger. It writes JSON lines to stderr so that stdout stays free for program output
 * (the score CLI prints one JSON object per image there). QGATE_LOG_LEVEL is read where the logger
 * is created, because logging must work before any configuration is loaded.
 */
export const logger = pino(
  { name: 'qgate', level: process.env.QGATE_LOG_LEVEL ?? 'info' },
  destination(2),
);

export type Logger = typeof logger;
