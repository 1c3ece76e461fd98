/**
 * The one error catalogue. Every failure a user can cause carries a stable code from here; the
 * transports (REST, gRPC, CLI) map these codes once each, and never invent their own.
 */
export const ErrorCodes = {
  /** Bytes that no decoder understands, or a decoder that gave up half way. */
  IMAGE_UNDECODABLE: 'IMAGE_UNDECODABLE',
  /** A format qgate refuses on purpose (SVG, PDF, …): only raster images are scored. */
  UNSUPPORTED_FORMAT: 'UNSUPPORTED_FORMAT',
  /** Too many bytes or too many pixels. */
  IMAGE_TOO_LARGE: 'IMAGE_TOO_LARGE',
  /** No image at all: empty body, or a missing field. */
  IMAGE_MISSING: 'IMAGE_MISSING',
  /** A parameter out of range or of the wrong type (tau, k, alpha, …). */
  INVALID_ARGUMENT: 'INVALID_ARGUMENT',
  /** A data file (IDX, features) whose bytes do not match its format. */
  DATA_MALFORMED: 'DATA_MALFORMED',
  /** A model or reference set that is missing, malformed, or does not fit the extractor. */
  MODEL_INVALID: 'MODEL_INVALID',
  /** Something asked for by name that is not there. */
  NOT_FOUND: 'NOT_FOUND',
  /** A TF.js backend that was asked for explicitly but cannot be loaded. */
  BACKEND_UNAVAILABLE: 'BACKEND_UNAVAILABLE',
  /** The request queue is full: try again later (HTTP 503 with Retry-After, gRPC RESOURCE_EXHAUSTED). */
  OVERLOADED: 'OVERLOADED',
  /** The service is starting (models not loaded yet) or draining for shutdown. */
  UNAVAILABLE: 'UNAVAILABLE',
  /** The caller's deadline passed before the work was done. */
  DEADLINE_EXCEEDED: 'DEADLINE_EXCEEDED',
  /** The caller went away (closed the connection or cancelled the call). */
  CANCELLED: 'CANCELLED',
  /** A state-changing endpoint called without the right bearer token, or with none configured. */
  UNAUTHORIZED: 'UNAUTHORIZED',
  /** A request body or message over the configured size limit (other than an image: IMAGE_TOO_LARGE). */
  PAYLOAD_TOO_LARGE: 'PAYLOAD_TOO_LARGE',
  /** A bug: anything thrown that is not a QgateError. Its message never reaches the caller. */
  INTERNAL: 'INTERNAL',
} as const;

export type ErrorCode = (typeof ErrorCodes)[keyof typeof ErrorCodes];

export class QgateError extends Error {
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'QgateError';
    this.code = code;
  }
}

/**
 * A QgateError without a stack trace, for answers given routinely and never logged with their
 * stack (overload refusals). Capturing one cost about 20 µs, which under 8× gRPC load added up to
 * 6% of the service's busy main thread in a CPU profile (docs/RELIABILITY.md, Overload).
 */
export function stacklessError(code: ErrorCode, message: string): QgateError {
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  try {
    return new QgateError(code, message);
  } finally {
    Error.stackTraceLimit = limit;
  }
}

export function isQgateError(e: unknown): e is QgateError {
  return e instanceof QgateError;
}
