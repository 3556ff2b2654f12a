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

# Runs as the image's unprivileged `node` user; only DATA_DIR and the compile cache are writable.
RUN mkdir -p /data node_modules/.cache/tessera-compile && chown node:node /data node_modules/.cache/tessera-compile
USER node
# Node's compile cache filled at build time with every module (bin/compile-cache.js): the server
# starts from compiled code and never loads Node's TypeScript stripper (about 17 MB it would keep).
RUN node --input-type=module -e "const cache = await import('/app/bin/compile-cache.js'); await cache.warmCompileCache(cache.enableCompileCache());"
VOLUME ["/data"]

EXPOSE 3000
# Liveness: the process answers (/healthz touches nothing else). Over https when Tessera terminates
# TLS itself (the certificate is for the public name, not 127.0.0.1, so it is not verified here).
# Orchestrators that route traffic should probe /readyz (store reachable, keys loaded) as well.
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
  CMD ["node", "-e", "const m = process.env.TLS_CERT ? require('node:https') : require('node:http'); m.get({ host: '127.0.0.1', port: process.env.PORT || 3000, path: '/healthz', rejectUnauthorized: false, timeout: 4000 }, (r) => process.exit(r.statusCode === 200 ? 0 : 1)).on('error', () => process.exit(1)).on('timeout', () => process.exit(1))"]

# WORKERS (unset) means one worker process per CPU the container may use: Node reads the cgroup CPU
# quota, so `--cpus=2` gives two. SIGTERM (docker stop) finishes in-flight requests first: give it
# more than the default 10 s (`docker stop -t 30`, compose's stop_grace_period), or requests still
# running at 10 s are cut off.
STOPSIGNAL SIGTERM
CMD ["node", "bin/tessera", "serve"]
