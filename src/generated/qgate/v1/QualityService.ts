// Original file: proto/qgate/v1/qgate.proto

import type * as grpc from '@grpc/grpc-js'
import type { MethodDefinition } from '@grpc/proto-loader'
import type { GenerateRequest as _qgate_v1_GenerateRequest, GenerateRequest__Output as _qgate_v1_GenerateRequest__Output } from '../../qgate/v1/GenerateRequest.ts';
import type { GenerateResponse as _qgate_v1_GenerateResponse, GenerateResponse__Output as _qgate_v1_GenerateResponse__Output } from '../../qgate/v1/GenerateResponse.ts';
import type { ScoreRequest as _qgate_v1_ScoreRequest, ScoreRequest__Output as _qgate_v1_ScoreRequest__Output } from '../../qgate/v1/ScoreRequest.ts';
import type { ScoreResponse as _qgate_v1_ScoreResponse, ScoreResponse__Output as _qgate_v1_ScoreResponse__Output } from '../../qgate/v1/ScoreResponse.ts';
import type { ScoreStreamResponse as _qgate_v1_ScoreStreamResponse, ScoreStreamResponse__Output as _qgate_v1_ScoreStreamResponse__Output } from '../../qgate/v1/ScoreStreamResponse.ts';

export interface QualityServiceClient extends grpc.Client {
  /**
   * Samples n images from a generator (n at most QGATE_GENERATE_MAX_N).
   */
  Generate(argument: _qgate_v1_GenerateRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_qgate_v1_GenerateResponse__Output>): grpc.ClientUnaryCall;
  Generate(argument: _qgate_v1_GenerateRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_qgate_v1_GenerateResponse__Output>): grpc.ClientUnaryCall;
  Generate(argument: _qgate_v1_GenerateRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_qgate_v1_GenerateResponse__Output>): grpc.ClientUnaryCall;
  Generate(argument: _qgate_v1_GenerateRequest, callback: grpc.requestCallback<_qgate_v1_GenerateResponse__Output>): grpc.ClientUnaryCall;
  /**
   * Samples n images from a generator (n at most QGATE_GENERATE_MAX_N).
   */
  generate(argument: _qgate_v1_GenerateRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_qgate_v1_GenerateResponse__Output>): grpc.ClientUnaryCall;
  generate(argument: _qgate_v1_GenerateRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_qgate_v1_GenerateResponse__Output>): grpc.ClientUnaryCall;
  generate(argument: _qgate_v1_GenerateRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_qgate_v1_GenerateResponse__Output>): grpc.ClientUnaryCall;
  generate(argument: _qgate_v1_GenerateRequest, callback: grpc.requestCallback<_qgate_v1_GenerateResponse__Output>): grpc.ClientUnaryCall;
  
  /**
   * The streaming form for large n (at most QGATE_GENERATE_STREAM_MAX_N): each message carries
   * the images of one model batch; attempts counts all samples drawn so far.
   */
  GenerateStream(argument: _qgate_v1_GenerateRequest, metadata: grpc.Metadata, options?: grpc.CallOptions): grpc.ClientReadableStream<_qgate_v1_GenerateResponse__Output>;
  GenerateStream(argument: _qgate_v1_GenerateRequest, options?: grpc.CallOptions): grpc.ClientReadableStream<_qgate_v1_GenerateResponse__Output>;
  /**
   * The streaming form for large n (at most QGATE_GENERATE_STREAM_MAX_N): each message carries
   * the images of one model batch; attempts counts all samples drawn so far.
   */
  generateStream(argument: _qgate_v1_GenerateRequest, metadata: grpc.Metadata, options?: grpc.CallOptions): grpc.ClientReadableStream<_qgate_v1_GenerateResponse__Output>;
  generateStream(argument: _qgate_v1_GenerateRequest, options?: grpc.CallOptions): grpc.ClientReadableStream<_qgate_v1_GenerateResponse__Output>;
  
  /**
   * Scores one image. INVALID_ARGUMENT for a bad image or tau, RESOURCE_EXHAUSTED when the queue
   * is full, UNAVAILABLE while starting or draining.
   */
  Score(argument: _qgate_v1_ScoreRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_qgate_v1_ScoreResponse__Output>): grpc.ClientUnaryCall;
  Score(argument: _qgate_v1_ScoreRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_qgate_v1_ScoreResponse__Output>): grpc.ClientUnaryCall;
  Score(argument: _qgate_v1_ScoreRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_qgate_v1_ScoreResponse__Output>): grpc.ClientUnaryCall;
  Score(argument: _qgate_v1_ScoreRequest, callback: grpc.requestCallback<_qgate_v1_ScoreResponse__Output>): grpc.ClientUnaryCall;
  /**
   * Scores one image. INVALID_ARGUMENT for a bad image or tau, RESOURCE_EXHAUSTED when the queue
   * is full, UNAVAILABLE while starting or draining.
   */
  score(argument: _qgate_v1_ScoreRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_qgate_v1_ScoreResponse__Output>): grpc.ClientUnaryCall;
  score(argument: _qgate_v1_ScoreRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_qgate_v1_ScoreResponse__Output>): grpc.ClientUnaryCall;
  score(argument: _qgate_v1_ScoreRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_qgate_v1_ScoreResponse__Output>): grpc.ClientUnaryCall;
  score(argument: _qgate_v1_ScoreRequest, callback: grpc.requestCallback<_qgate_v1_ScoreResponse__Output>): grpc.ClientUnaryCall;
  
  /**
   * Many images on one stream. Each request gets exactly one response, in request order; a bad
   * image is answered with `error` in its response and does not end the stream.
   */
  ScoreStream(metadata: grpc.Metadata, options?: grpc.CallOptions): grpc.ClientDuplexStream<_qgate_v1_ScoreRequest, _qgate_v1_ScoreStreamResponse__Output>;
  ScoreStream(options?: grpc.CallOptions): grpc.ClientDuplexStream<_qgate_v1_ScoreRequest, _qgate_v1_ScoreStreamResponse__Output>;
  /**
   * Many images on one stream. Each request gets exactly one response, in request order; a bad
   * image is answered with `error` in its response and does not end the stream.
   */
  scoreStream(metadata: grpc.Metadata, options?: grpc.CallOptions): grpc.ClientDuplexStream<_qgate_v1_ScoreRequest, _qgate_v1_ScoreStreamResponse__Output>;
  scoreStream(options?: grpc.CallOptions): grpc.ClientDuplexStream<_qgate_v1_ScoreRequest, _qgate_v1_ScoreStreamResponse__Output>;
  
}

export interface QualityServiceHandlers extends grpc.UntypedServiceImplementation {
  /**
   * Samples n images from a generator (n at most QGATE_GENERATE_MAX_N).
   */
  Generate: grpc.handleUnaryCall<_qgate_v1_GenerateRequest__Output, _qgate_v1_GenerateResponse>;
  
  /**
   * The streaming form for large n (at most QGATE_GENERATE_STREAM_MAX_N): each message carries
   * the images of one model batch; attempts counts all samples drawn so far.
   */
  GenerateStream: grpc.handleServerStreamingCall<_qgate_v1_GenerateRequest__Output, _qgate_v1_GenerateResponse>;
  
  /**
   * Scores one image. INVALID_ARGUMENT for a bad image or tau, RESOURCE_EXHAUSTED when the queue
   * is full, UNAVAILABLE while starting or draining.
   */
  Score: grpc.handleUnaryCall<_qgate_v1_ScoreRequest__Output, _qgate_v1_ScoreResponse>;
  
  /**
   * Many images on one stream. Each request gets exactly one response, in request order; a bad
   * image is answered with `error` in its response and does not end the stream.
   */
  ScoreStream: grpc.handleBidiStreamingCall<_qgate_v1_ScoreRequest__Output, _qgate_v1_ScoreStreamResponse>;
  
}

export interface QualityServiceDefinition extends grpc.ServiceDefinition {
  Generate: MethodDefinition<_qgate_v1_GenerateRequest, _qgate_v1_GenerateResponse, _qgate_v1_GenerateRequest__Output, _qgate_v1_GenerateResponse__Output>
  GenerateStream: MethodDefinition<_qgate_v1_GenerateRequest, _qgate_v1_GenerateResponse, _qgate_v1_GenerateRequest__Output, _qgate_v1_GenerateResponse__Output>
  Score: MethodDefinition<_qgate_v1_ScoreRequest, _qgate_v1_ScoreResponse, _qgate_v1_ScoreRequest__Output, _qgate_v1_ScoreResponse__Output>
  ScoreStream: MethodDefinition<_qgate_v1_ScoreRequest, _qgate_v1_ScoreStreamResponse, _qgate_v1_ScoreRequest__Output, _qgate_v1_ScoreStreamResponse__Output>
}
