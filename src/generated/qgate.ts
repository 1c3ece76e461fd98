import type * as grpc from '@grpc/grpc-js';
import type { MessageTypeDefinition } from '@grpc/proto-loader';

import type { Error as _qgate_v1_Error, Error__Output as _qgate_v1_Error__Output } from './qgate/v1/Error.ts';
import type { GenerateRequest as _qgate_v1_GenerateRequest, GenerateRequest__Output as _qgate_v1_GenerateRequest__Output } from './qgate/v1/GenerateRequest.ts';
import type { GenerateResponse as _qgate_v1_GenerateResponse, GenerateResponse__Output as _qgate_v1_GenerateResponse__Output } from './qgate/v1/GenerateResponse.ts';
import type { GeneratedImage as _qgate_v1_GeneratedImage, GeneratedImage__Output as _qgate_v1_GeneratedImage__Output } from './qgate/v1/GeneratedImage.ts';
import type { QualityServiceClient as _qgate_v1_QualityServiceClient, QualityServiceDefinition as _qgate_v1_QualityServiceDefinition } from './qgate/v1/QualityService.ts';
import type { ScoreRequest as _qgate_v1_ScoreRequest, ScoreRequest__Output as _qgate_v1_ScoreRequest__Output } from './qgate/v1/ScoreRequest.ts';
import type { ScoreResponse as _qgate_v1_ScoreResponse, ScoreResponse__Output as _qgate_v1_ScoreResponse__Output } from './qgate/v1/ScoreResponse.ts';
import type { ScoreStreamResponse as _qgate_v1_ScoreStreamResponse, ScoreStreamResponse__Output as _qgate_v1_ScoreStreamResponse__Output } from './qgate/v1/ScoreStreamResponse.ts';

type SubtypeConstructor<Constructor extends new (...args: any) => any, Subtype> = {
  new(...args: ConstructorParameters<Constructor>): Subtype;
};

export interface ProtoGrpcType {
  qgate: {
    v1: {
      Error: MessageTypeDefinition<_qgate_v1_Error, _qgate_v1_Error__Output>
      GenerateRequest: MessageTypeDefinition<_qgate_v1_GenerateRequest, _qgate_v1_GenerateRequest__Output>
      GenerateResponse: MessageTypeDefinition<_qgate_v1_GenerateResponse, _qgate_v1_GenerateResponse__Output>
      GeneratedImage: MessageTypeDefinition<_qgate_v1_GeneratedImage, _qgate_v1_GeneratedImage__Output>
      QualityService: SubtypeConstructor<typeof grpc.Client, _qgate_v1_QualityServiceClient> & { service: _qgate_v1_QualityServiceDefinition }
      ScoreRequest: MessageTypeDefinition<_qgate_v1_ScoreRequest, _qgate_v1_ScoreRequest__Output>
      ScoreResponse: MessageTypeDefinition<_qgate_v1_ScoreResponse, _qgate_v1_ScoreResponse__Output>
      ScoreStreamResponse: MessageTypeDefinition<_qgate_v1_ScoreStreamResponse, _qgate_v1_ScoreStreamResponse__Output>
    }
  }
}

