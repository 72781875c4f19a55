# syntax=docker/dockerfile:1
# soma-verify in a container: the post-deploy gate (a Kubernetes Job, a Helm test, a CI step) or
# `serve` for Prometheus. See README, "Packaging".
#
#   docker build -t soma-verify .
#   docker run --rm --read-only -v "$PWD/soma-verify.config.yaml:/config/soma-verify.config.yaml:ro" \
#     -v "$PWD/reports:/reports" soma-verify staging --wait 5m --format junit --output /reports/junit.xml
ARG NODE_IMAGE=node:20-alpine

# Build: install everything, compile, render the help, bundle both CLIs.
FROM ${NODE_IMAGE} AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund --ignore-scripts
COPY . .
RUN npm run build

# Runtime: no node_modules at all. Each CLI is one esbuild bundle (dist/bundle) that carries its
# dependencies; the launchers, the rendered help, package.json (the version) and ports.json are
# all it reads besides.
FROM ${NODE_IMAGE} AS runtime
# tini as PID 1: it forwards SIGTERM/SIGINT to soma-verify (which ends a --wait with its report,
# and stops serve mode cleanly) and reaps zombies. Node alone as PID 1 would ignore a SIGTERM
# that arrives before soma-verify installs its handlers.
RUN apk add --no-cache tini
WORKDIR /app
COPY --from=build /src/package.json /src/ports.json ./
COPY --from=build /src/bin ./bin
COPY --from=build /src/dist/bundle ./dist/bundle
COPY --from=build /src/dist/help ./dist/help
# Owned by the user below: a bind mount or volume created by Docker starts as root's.
RUN mkdir /reports && chown 10001:10001 /reports
ENV NODE_ENV=production
# A numeric, non-root user: Kubernetes can check runAsNonRoot without a passwd entry.
USER 10001:10001
# The config is found here (mount soma-verify.config.yaml); reports go to a writable volume, so
# the root filesystem can be read-only.
WORKDIR /config
VOLUME ["/reports"]
# serve mode
EXPOSE 9465
ENTRYPOINT ["/sbin/tini", "--", "node", "/app/bin/soma-verify.js"]
CMD ["--help"]
