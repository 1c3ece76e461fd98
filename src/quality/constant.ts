import * as tf from '@tensorflow/tfjs';

/**
 * `value` is `f(x)`, its gradient w.r.t. x is zero, and the ops inside f are not recorded on the
 * gradient tape (they run nested inside the custom op, so ops without a gradient, e.g. TopK, are
 * fine). This is how masks and thresholds become constants of the estimate.
 */
export function constantOf<T extends tf.Tensor>(x: tf.Tensor, f: (frozen: tf.Tensor) => T): T {
  const op = tf.customGrad((input: tf.Tensor | tf.GradSaveFunc) => ({
    value: f(input as tf.Tensor),
    gradFunc: () => tf.zerosLike(input as tf.Tensor),
  }));
  return op(x) as T;
}
