# Tessera: TypeScript runs directly on Node 24 (type stripping), so there is no build stage.
FROM node:24-slim

ENV NODE_ENV=production \
    HOST=0.0.0.0 \
    PORT=3000 \
    DATA_DIR=/data

WORKDIR /app

# Dependencies first, so editing the source does not invalidate this layer.
# argon2 ships prebuilt binaries for linux-x64 glibc; no compiler is needed.
COPY package.json package-lock.json ./
RUN npm ci --omit=dev && npm cache clean --force

# bin/, src/, views/ and config/ (if present); .dockerignore keeps out the rest. Root-owned: the
# app cannot modify its own code.
COPY . .

# Runs as the image's unprivileged `node` user; only DATA_DIR is writable.
RUN mkdir -p /data && chown node:node /data
USER node
VOLUME ["/data"]

EXPOSE 3000
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.PORT || 3000) + '/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]

CMD ["node", "bin/tessera", "serve"]
