// Original file: proto/qgate/v1/qgate.proto


export interface GeneratedImage {
  /**
   * A PNG of the generator's image shape (28x28 gray for MNIST generators).
   */
  'png'?: (Buffer | Uint8Array | string);
  'q'?: (number | string);
  /**
   * q < tau (the request's tau, else QGATE_TAU).
   */
  'passed'?: (boolean);
}

export interface GeneratedImage__Output {
  /**
   * A PNG of the generator's image shape (28x28 gray for MNIST generators).
   */
  'png': (Buffer);
  'q': (number);
  /**
   * q < tau (the request's tau, else QGATE_TAU).
   */
  'passed': (boolean);
}
