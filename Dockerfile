# ticket-mx image: production profile (set DATABASE_URL and MAIL_DOMAINS). Node 24 is the current
# LTS (package.json's engines: what our dependencies need, Node 22.19 or later). The embedded
# PostgreSQL of the local profile is left out (npm's optional dependencies): without DATABASE_URL
# the container stops at once with exit 78 and says so. Checked by test/unit/deploy.test.ts.
FROM node:24-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=optional --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build && npm prune --omit=dev --omit=optional --no-audit --no-fund

FROM node:24-bookworm-slim
ENV NODE_ENV=production \
    SMTP_PORT=2525 \
    HTTP_PORT=8025
WORKDIR /app
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json ./
COPY bin ./bin
COPY migrations ./migrations
COPY templates ./templates
USER node
# Inside the container we listen on 2525 (no root needed); publish it as the host's port 25.
EXPOSE 2525 8025
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.HTTP_PORT||8025)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
ENTRYPOINT ["node", "bin/ticket-mx.js"]
CMD ["serve"]
