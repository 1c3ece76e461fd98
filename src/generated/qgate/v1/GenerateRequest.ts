// Original file: proto/qgate/v1/qgate.proto

import type { Long } from '@grpc/proto-loader';

export interface GenerateRequest {
  /**
   * Number of images wanted, 1..max.
   */
  'n'?: (number);
  /**
   * With tau, only images with q < tau are returned (rejection sampling, bounded attempts).
   */
  'tau'?: (number | string);
  /**
   * Empty means the default generator (QGATE_DEFAULT_GENERATOR, else the first by name).
   */
  'generator'?: (string);
  /**
   * Empty means the active version: the pinned one, else the newest.
   */
  'version'?: (string);
  /**
   * Seeds the latent vectors, 0 <= seed < 2^32; absent means a random seed (returned).
   */
  'seed'?: (number | string | Long);
  '_tau'?: "tau";
  '_seed'?: "seed";
}

export interface GenerateRequest__Output {
  /**
   * Number of images wanted, 1..max.
   */
  'n': (number);
  /**
   * With tau, only images with q < tau are returned (rejection sampling, bounded attempts).
   */
  'tau'?: (number);
  /**
   * Empty means the default generator (QGATE_DEFAULT_GENERATOR, else the first by name).
   */
  'generator': (string);
  /**
   * Empty means the active version: the pinned one, else the newest.
   */
  'version': (string);
  /**
   * Seeds the latent vectors, 0 <= seed < 2^32; absent means a random seed (returned).
   */
  'seed'?: (string);
  '_tau'?: "tau";
  '_seed'?: "seed";
}
