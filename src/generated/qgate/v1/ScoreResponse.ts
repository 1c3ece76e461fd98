// Original file: proto/qgate/v1/qgate.proto


export interface ScoreResponse {
  /**
   * Q(I) in [0,1], lower is better.
   */
  'q'?: (number | string);
  /**
   * q < tau.
   */
  'passed'?: (boolean);
  'tau'?: (number | string);
  'noise'?: (number | string);
  'noiseNorm'?: (number | string);
  'distance'?: (number | string);
  'distanceNorm'?: (number | string);
  'realism'?: (number | string);
  /**
   * The decoded image: format as sharp names it (png, jpeg, …), original width and height.
   */
  'format'?: (string);
  'width'?: (number);
  'height'?: (number);
  /**
   * Ids of the reference set and the feature extractor that produced the score.
   */
  'reference'?: (string);
  'extractor'?: (string);
}

export interface ScoreResponse__Output {
  /**
   * Q(I) in [0,1], lower is better.
   */
  'q': (number);
  /**
   * q < tau.
   */
  'passed': (boolean);
  'tau': (number);
  'noise': (number);
  'noiseNorm': (number);
  'distance': (number);
  'distanceNorm': (number);
  'realism': (number);
  /**
   * The decoded image: format as sharp names it (png, jpeg, …), original width and height.
   */
  'format': (string);
  'width': (number);
  'height': (number);
  /**
   * Ids of the reference set and the feature extractor that produced the score.
   */
  'reference': (string);
  'extractor': (string);
}
