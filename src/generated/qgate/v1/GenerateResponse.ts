// Original file: proto/qgate/v1/qgate.proto

import type { GeneratedImage as _qgate_v1_GeneratedImage, GeneratedImage__Output as _qgate_v1_GeneratedImage__Output } from '../../qgate/v1/GeneratedImage.ts';
import type { Long } from '@grpc/proto-loader';

export interface GenerateResponse {
  'images'?: (_qgate_v1_GeneratedImage)[];
  /**
   * Samples drawn (so far, on a stream). Equal to n without tau; with tau it may exceed n and is
   * bounded by n * QGATE_GENERATE_MAX_ATTEMPTS_PER_IMAGE. When the bound is hit, fewer than n
   * images are returned.
   */
  'attempts'?: (number);
  'generator'?: (string);
  'version'?: (string);
  /**
   * The seed used, so that a call can be repeated.
   */
  'seed'?: (number | string | Long);
  'tau'?: (number | string);
}

export interface GenerateResponse__Output {
  'images': (_qgate_v1_GeneratedImage__Output)[];
  /**
   * Samples drawn (so far, on a stream). Equal to n without tau; with tau it may exceed n and is
   * bounded by n * QGATE_GENERATE_MAX_ATTEMPTS_PER_IMAGE. When the bound is hit, fewer than n
   * images are returned.
   */
  'attempts': (number);
  'generator': (string);
  'version': (string);
  /**
   * The seed used, so that a call can be repeated.
   */
  'seed': (string);
  'tau': (number);
}
