/**
 * Adam, as TF.js's AdamOptimizer computes it, with each variable's update done by one compiled
 * kernel on the wasm backend (kernels/optim.c) instead of eleven tensor ops. TF.js's version costs
 * eleven kernel calls and ten temporaries per variable per step, which was about 5 ms of an MLP
 * step of 20. Same state (the moment variables and β powers, so getWeights, setWeights and
 * qgate's checkpoints are unchanged), same arithmetic in the same order, same bits
 * (test/native-kernels.test.ts trains with both). On other backends, or if the compiled kernels
 * cannot load, it is TF.js's AdamOptimizer.
 */
import * as tf from '@tensorflow/tfjs';
import { nativeKernels } from './native-kernels.ts';

/** AdamOptimizer's private state, which this subclass keeps exactly as TF.js lays it out. */
interface AdamState {
  accBeta1: tf.Variable;
  accBeta2: tf.Variable;
  accumulatedFirstMoment: Array<{ originalName: string; variable: tf.Variable } | undefined>;
  accumulatedSecondMoment: Array<{ originalName: string; variable: tf.Variable } | undefined>;
}

/** Only what a kernel needs from the wasm backend. */
interface WasmBackend extends tf.KernelBackend {
  makeOutput(shape: number[], dtype: tf.DataType): tf.TensorInfo;
}

export class QgateAdamOptimizer extends tf.AdamOptimizer {
  override applyGradients(variableGradients: Parameters<tf.AdamOptimizer['applyGradients']>[0]): void {
    const backend = tf.backend() as WasmBackend;
    const native = tf.getBackend() === 'wasm' ? nativeKernels(backend) : undefined;
    if (!native) {
      super.applyGradients(variableGradients);
      return;
    }
    const state = this as unknown as AdamState;
    const names = Array.isArray(variableGradients) ? variableGradients.map((v) => v.name) : Object.keys(variableGradients);
    const f = Math.fround;
    tf.tidy(() => {
      // TF.js's scalars, rounded as its scalar tensors round them.
      const oneMinusAccB1 = f(1 - state.accBeta1.dataSync()[0]!);
      const oneMinusAccB2 = f(1 - state.accBeta2.dataSync()[0]!);
      names.forEach((name, i) => {
        const value = tf.engine().registeredVariables[name]!;
        // Created as TF.js creates them, so the optimizer's weights keep their names and order.
        state.accumulatedFirstMoment[i] ??= { originalName: `${name}/m`, variable: tf.tidy(() => tf.zerosLike(value).variable(false)) };
        state.accumulatedSecondMoment[i] ??= { originalName: `${name}/v`, variable: tf.tidy(() => tf.zerosLike(value).variable(false)) };
        const gradient = Array.isArray(variableGradients) ? variableGradients[i]!.tensor : variableGradients[name];
        if (gradient === undefined || gradient === null) return;
        const m = state.accumulatedFirstMoment[i]!.variable;
        const v = state.accumulatedSecondMoment[i]!.variable;
        if (value.dtype !== 'float32' || gradient.dtype !== 'float32' || gradient.size !== value.size) {
          throw new Error(`Adam: variable ${name} and its gradient must be float32 of one size`);
        }
        // New buffers, assigned below: the variables' old data may still be held elsewhere (a tape, a kept tensor).
        const out = [value, m, v].map((t) => tf.engine().makeTensorFromTensorInfo(backend.makeOutput(t.shape, 'float32'), backend));
        native.adam(
          native.offset(value), native.offset(m), native.offset(v), native.offset(gradient), value.size,
          f(this.beta1), f(1 - this.beta1), f(this.beta2), f(1 - this.beta2), oneMinusAccB1, oneMinusAccB2,
          f(this.epsilon), f(-this.learningRate), native.offset(out[0]!), native.offset(out[1]!), native.offset(out[2]!),
        );
        m.assign(out[1]!);
        v.assign(out[2]!);
        value.assign(out[0]!);
      });
      state.accBeta1.assign(tf.mul(state.accBeta1, this.beta1));
      state.accBeta2.assign(tf.mul(state.accBeta2, this.beta2));
    });
    this.incrementIterations();
  }
}
