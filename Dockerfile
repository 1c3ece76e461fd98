# qgate: `docker build -t qgate .` (CPU: native libtensorflow through @tensorflow/tfjs-node, else
# wasm), or `docker build --build-arg ACCEL=gpu -t qgate:gpu .` for CUDA through
# @tensorflow/tfjs-node-gpu (run with `--gpus all`). Both run `npm start` as a non-root user.
#
# tfjs-node(-gpu) 4.22 downloads libtensorflow 2.9.1 at install time (so the build needs network),
# which is built against CUDA 11.2 and cuDNN 8.1: hence the CUDA base image below.

ARG ACCEL=cpu
ARG NODE_VERSION=20.19
ARG CUDA_IMAGE=nvidia/cuda:11.2.2-cudnn8-runtime-ubuntu20.04

FROM node:${NODE_VERSION}-bookworm-slim AS node

# Production node_modules. tsx is a runtime dependency: npm start runs the TypeScript sources.
FROM node AS deps
ARG ACCEL
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund \
 && if [ "$ACCEL" = "gpu" ]; then \
      test -f node_modules/@tensorflow/tfjs-node-gpu/package.json || { echo "tfjs-node-gpu did not install" >&2; exit 1; }; \
      rm -rf node_modules/@tensorflow/tfjs-node; \
    else \
      rm -rf node_modules/@tensorflow/tfjs-node-gpu; \
    fi \
 && npm cache clean --force

# The web page: built with the dev dependencies (esbuild, uPlot), copied into the image as files.
FROM node AS web
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund --ignore-scripts
COPY tsconfig.json ./
COPY scripts ./scripts
COPY web ./web
RUN npm run build

FROM node:${NODE_VERSION}-bookworm-slim AS runtime-cpu

# The CUDA runtime with Node copied in from the official image; uid 1000 as in the node image.
FROM ${CUDA_IMAGE} AS runtime-gpu
COPY --from=node /usr/local/bin/node /usr/local/bin/node
COPY --from=node /usr/local/lib/node_modules /usr/local/lib/node_modules
RUN ln -s ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm \
 && ln -s ../lib/node_modules/npm/bin/npx-cli.js /usr/local/bin/npx \
 && groupadd --gid 1000 node \
 && useradd --uid 1000 --gid node --shell /bin/sh --create-home node
ENV QGATE_BACKEND=gpu

FROM runtime-${ACCEL} AS runtime
ENV NODE_ENV=production \
    QGATE_HOST=0.0.0.0 \
    QGATE_HTTP_PORT=8080 \
    QGATE_GRPC_PORT=50051
WORKDIR /app
# Everything root-owned and read-only to the service user; models load only from /app/models.
COPY --from=deps /app/node_modules ./node_modules
COPY package.json package-lock.json tsconfig.json ./
COPY src ./src
COPY proto ./proto
COPY models ./models
COPY scripts/build-web.ts ./scripts/build-web.ts
COPY --from=web /app/dist/web ./dist/web
USER node
EXPOSE 8080 50051
HEALTHCHECK --interval=15s --timeout=5s --start-period=120s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.QGATE_HTTP_PORT || 8080) + '/readyz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# npm forwards SIGTERM to the service, which drains (QGATE_SHUTDOWN_TIMEOUT_MS) before it exits.
# Its prestart (npm run build) finds no build tools in this production install and keeps dist/web.
CMD ["npm", "start"]
