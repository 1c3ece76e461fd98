// Original file: proto/qgate/v1/qgate.proto


export interface ScoreRequest {
  /**
   * PNG, JPEG, WebP, GIF (first frame), TIFF or AVIF bytes; at most QGATE_MAX_UPLOAD_BYTES.
   */
  'image'?: (Buffer | Uint8Array | string);
  /**
   * The gate: the image passes when q < tau. 0 < tau <= 1; absent means QGATE_TAU.
   */
  'tau'?: (number | string);
  '_tau'?: "tau";
}

export interface ScoreRequest__Output {
  /**
   * PNG, JPEG, WebP, GIF (first frame), TIFF or AVIF bytes; at most QGATE_MAX_UPLOAD_BYTES.
   */
  'image': (Buffer);
  /**
   * The gate: the image passes when q < tau. 0 < tau <= 1; absent means QGATE_TAU.
   */
  'tau'?: (number);
  '_tau'?: "tau";
}
