#!/usr/bin/env bash
# Prints the path of a Node that satisfies package.json's engines: this machine's when it does;
# otherwise the one the image runs (Dockerfile: Node 24 LTS), fetched once from the npm registry's
# node-linux-<arch> build into .ci/node-<version>/ (git-ignored). Used by .ci/run and by the
# benchmarks, so that what is tested and measured is the runtime ticket-mx ships with, not an
# older one below its engines (Node 20 takes ~30% more CPU a message and a smaller young
# generation than Node 24: README, Benchmark). Messages go to stderr; stdout is only the path.
set -euo pipefail
cd "$(dirname "$0")/.."

NODE_FOR_IMAGE=24.22.3
floor=$(node -p 'require("./package.json").engines.node.replace(/^>=\s*/, "")')
if node -e "const [a,b]=process.versions.node.split('.').map(Number),[x,y]='$floor'.split('.').map(Number);process.exit(a>x||(a===x&&b>=(y||0))?0:1)"; then
  command -v node
  exit 0
fi
arch=$(uname -m | sed 's/x86_64/x64/;s/aarch64/arm64/')
dir=".ci/node-$NODE_FOR_IMAGE"
if [ ! -x "$dir/bin/node" ]; then
  echo "node $(node --version) is older than engines >=$floor: fetching Node $NODE_FOR_IMAGE (node-linux-$arch) into $dir" >&2
  # unpacked beside it and renamed when whole: an interrupted fetch leaves no half a Node to trust
  partial="$dir.partial.$$"
  rm -rf "$partial" && mkdir -p "$partial"
  (cd "$partial" && npm pack "node-linux-$arch@$NODE_FOR_IMAGE" --silent >/dev/null && tar -xzf node-linux-*.tgz --strip-components=1 && rm node-linux-*.tgz)
  rm -rf "$dir" && mv "$partial" "$dir"
fi
echo "$PWD/$dir/bin/node"
