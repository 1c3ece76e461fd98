#!/bin/sh
# Rebuilds qgate's own wasm kernels, src/backend/kernels/*.wasm, from their C sources, and checks
# that they touch no memory of their own. Needs Debian's clang and lld (clang 14 built the
# committed files; test/native-kernels.test.ts checks that a rebuild gives the same bytes):
#   apt-get install clang lld llvm-14 && npm run build:wasm-kernels
set -eu
cd "$(dirname "$0")/../src/backend/kernels"
# -mbulk-memory: the zeroing loop becomes memory.fill instead of a call to a memset that does not exist.
# -ffp-contract=off: no fused multiply-adds, whose single rounding would change the bits.
FLAGS="--target=wasm32 -O3 -msimd128 -mbulk-memory -ffp-contract=off -nostdlib -Wl,--no-entry -Wl,--import-memory"
for src in *.c; do
  name=${src%.c}
  clang $FLAGS -o "$name.wasm" "$src"
  # The threaded backend's memory is shared, and an imported memory must be declared the same way.
  clang $FLAGS -matomics -Wl,--shared-memory -Wl,--max-memory=4294967296 -o "$name-shared.wasm" "$src"
  for out in "$name.wasm" "$name-shared.wasm"; do
    # No stack pointer use, no calls, no data segment: the heap belongs to TF.js.
    if llvm-objdump-14 -d "$out" | grep -E 'global\.(get|set)|\bcall\b' >/dev/null; then
      echo "$out uses the stack or calls a function; it must not" >&2
      exit 1
    fi
    if llvm-objdump-14 -h "$out" | grep -E '\bDATA\b' >/dev/null; then
      echo "$out has a data segment; it must not" >&2
      exit 1
    fi
    echo "built src/backend/kernels/$out ($(wc -c < "$out") bytes)"
  done
done
