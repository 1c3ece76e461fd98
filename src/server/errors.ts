/**
 * The error catalogue mapped once to HTTP and once to gRPC. The Record type makes a new code in
 * src/errors.ts a compile error here until it has both statuses.
 */
import { status as GrpcStatus } from '@grpc/grpc-js';
import { ErrorCodes, isQgateError, QgateError, type ErrorCode } from '../errors.ts';

interface Statuses {
  http: number;
  grpc: GrpcStatus;
}

export const ERROR_STATUS: Readonly<Record<ErrorCode, Statuses>> = {
  IMAGE_UNDECODABLE: { http: 400, grpc: GrpcStatus.INVALID_ARGUMENT },
  UNSUPPORTED_FORMAT: { http: 415, grpc: GrpcStatus.INVALID_ARGUMENT },
  IMAGE_TOO_LARGE: { http: 413, grpc: GrpcStatus.INVALID_ARGUMENT },
  IMAGE_MISSING: { http: 400, grpc: GrpcStatus.INVALID_ARGUMENT },
  INVALID_ARGUMENT: { http: 400, grpc: GrpcStatus.INVALID_ARGUMENT },
  DATA_MALFORMED: { http: 400, grpc: GrpcStatus.INVALID_ARGUMENT },
  MODEL_INVALID: { http: 500, grpc: GrpcStatus.INTERNAL },
  NOT_FOUND: { http: 404, grpc: GrpcStatus.NOT_FOUND },
  BACKEND_UNAVAILABLE: { http: 503, grpc: GrpcStatus.UNAVAILABLE },
  OVERLOADED: { http: 503, grpc: GrpcStatus.RESOURCE_EXHAUSTED },
  UNAVAILABLE: { http: 503, grpc: GrpcStatus.UNAVAILABLE },
  DEADLINE_EXCEEDED: { http: 504, grpc: GrpcStatus.DEADLINE_EXCEEDED },
  // 499 is nginx's "client closed request"; nobody reads it, but logs and metrics do.
  CANCELLED: { http: 499, grpc: GrpcStatus.CANCELLED },
  UNAUTHORIZED: { http: 401, grpc: GrpcStatus.UNAUTHENTICATED },
  PAYLOAD_TOO_LARGE: { http: 413, grpc: GrpcStatus.RESOURCE_EXHAUSTED },
  INTERNAL: { http: 500, grpc: GrpcStatus.INTERNAL },
};

// Keeps the table honest at start-up even if someone casts around the Record type.
for (const code of Object.values(ErrorCodes)) {
  if (!ERROR_STATUS[code]) throw new Error(`error code ${code} has no HTTP/gRPC status`);
}

/** Anything thrown, as a QgateError; an unknown error becomes INTERNAL with a generic message. */
export function asQgateError(e: unknown): QgateError {
  if (isQgateError(e)) return e;
  return new QgateError('INTERNAL', 'internal error', { cause: e });
}

export function httpStatusOf(e: QgateError): number {
  return ERROR_STATUS[e.code].http;
}

export function grpcStatusOf(e: QgateError): GrpcStatus {
  return ERROR_STATUS[e.code].grpc;
}

/** The JSON body of every REST error. */
export function errorBody(e: QgateError): { error: { code: ErrorCode; message: string } } {
  return { error: { code: e.code, message: e.message } };
}
