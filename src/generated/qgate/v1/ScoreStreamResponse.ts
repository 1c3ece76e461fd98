// Original file: proto/qgate/v1/qgate.proto

import type { ScoreResponse as _qgate_v1_ScoreResponse, ScoreResponse__Output as _qgate_v1_ScoreResponse__Output } from '../../qgate/v1/ScoreResponse.ts';
import type { Error as _qgate_v1_Error, Error__Output as _qgate_v1_Error__Output } from '../../qgate/v1/Error.ts';

export interface ScoreStreamResponse {
  /**
   * 0-based position of the request on the stream.
   */
  'index'?: (number);
  'score'?: (_qgate_v1_ScoreResponse | null);
  'error'?: (_qgate_v1_Error | null);
  'result'?: "score"|"error";
}

export interface ScoreStreamResponse__Output {
  /**
   * 0-based position of the request on the stream.
   */
  'index': (number);
  'score'?: (_qgate_v1_ScoreResponse__Output | null);
  'error'?: (_qgate_v1_Error__Output | null);
  'result'?: "score"|"error";
}
