// Original file: proto/qgate/v1/qgate.proto


export interface Error {
  /**
   * A stable code from qgate's error catalogue (IMAGE_UNDECODABLE, IMAGE_TOO_LARGE, …).
   */
  'code'?: (string);
  'message'?: (string);
}

export interface Error__Output {
  /**
   * A stable code from qgate's error catalogue (IMAGE_UNDECODABLE, IMAGE_TOO_LARGE, …).
   */
  'code': (string);
  'message': (string);
}
