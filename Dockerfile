# The SMTP relay for devices (relay/, docs/relay.md) as a container image: one bundled file on Node.js,
# no node_modules in the final image.
#
#   docker build -t oauth-outbox-relay .
#   docker run -d --name relay -p 587:2587 -p 465:2465 -p 8025:8025 \
#     -v /etc/oauth-outbox-relay:/config:ro -e RELAY_CONFIG=/config/relay.json oauth-outbox-relay
#
# The configuration names the ports; inside the container use ports above 1023 (the process does not run
# as root) and map them as above. relay.container.example.json is a configuration for this image: its ports
# are the EXPOSEd ones and its files are under /config. The process runs as the image's user "node" (uid and
# gid 1000): the mounted files must be readable by it (chgrp 1000 and chmod 640 for the keys).
# SIGTERM (docker stop) lets messages already in DATA finish: give it shutdownGraceSeconds plus a few
# (docker stop -t 40). SIGHUP re-reads the TLS certificate and key.
#
# Behind Docker's port mapping the relay sees the device's own address only while the mapping is done by
# iptables (Linux, IPv4, the default); where Docker's userland proxy forwards instead (connections to
# localhost, IPv6 without ip6tables, Docker Desktop) every device appears as the bridge's gateway, so
# sourceRanges cannot tell devices apart and one device's failed logins block all. Then run it with
# --network host.
#
# The base image is named by tag; pin it by digest for a reproducible build (docker buildx imagetools
# inspect node:22-bookworm-slim prints the digest): FROM node:22-bookworm-slim@sha256:<digest>.

FROM node:22-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
# No install scripts: the relay needs none, and the test-only native packages would need a compiler.
RUN npm ci --no-audit --no-fund --ignore-scripts
COPY tsconfig.json ./
COPY shared ./shared
COPY relay ./relay
RUN node relay/build.mjs --outfile=/out/relay.mjs

FROM node:22-bookworm-slim
ENV NODE_ENV=production \
    MALLOC_ARENA_MAX=2 \
    RELAY_CONFIG=/config/relay.json
WORKDIR /app
COPY --from=build /out/relay.mjs /out/relay.mjs.LEGAL.txt ./
USER node
EXPOSE 2587 2465 8025
STOPSIGNAL SIGTERM
# Needs "health": { "port": 8025 } in the configuration (RELAY_HEALTH_PORT if you chose another).
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s \
  CMD node -e "fetch('http://127.0.0.1:' + (process.env.RELAY_HEALTH_PORT || 8025) + '/health').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"
# A small young generation: the relay streams buffers, and the default keeps ~40 MB more of them around.
CMD ["node", "--max-semi-space-size=1", "relay.mjs"]
