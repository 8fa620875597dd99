#!/usr/bin/env bash
# The Kubernetes manifests (deploy/): they render (kubectl kustomize, the
# base and the etcd overlay), every object validates against the Kubernetes
# API's schemas (validate.mjs, npm's kubernetes-models), and they agree with
# weft's own binaries: every flag a weft container is given is one its
# binary has, the StorageClass parameters are ones weft-csi knows, the
# driver name is weft-csi's. And kubectl finds the kubectl-weft plugin on
# PATH and runs `kubectl weft get ...` against a real weft-control.
#   deploy_test.sh WEFT ENGINE CONTROL CSI
set -u
weft=$1
engine=$2
control=$3
csi=$4
here=$(cd "$(dirname "$0")" && pwd)
deploy=$(cd "$here/../../deploy" && pwd)
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "SKIP: no node/npm (scripts/setup.sh installs nodejs and npm)"
  exit 77
fi
for tool in kubectl jq; do
  command -v $tool >/dev/null || { echo "FAIL: no $tool (scripts/setup.sh installs it)"; exit 1; }
done
data=$(mktemp -d)
control_pid=
trap '[ -n "$control_pid" ] && kill $control_pid 2>/dev/null; rm -rf "$data"' EXIT
fail() {
  echo "FAIL: $*"
  exit 1
}

# The validator's packages, cached like the OpenAPI test's (re-runs need no
# network).
export npm_config_cache="${XDG_CACHE_HOME:-$HOME/.cache}/weft-npm"
export npm_config_prefer_offline=true npm_config_update_notifier=false
export npm_config_fund=false npm_config_audit=false npm_config_loglevel=error
mods=$npm_config_cache/k8s-validate
if [ ! -d "$mods/node_modules/kubernetes-models" ] || [ ! -d "$mods/node_modules/yaml" ]; then
  mkdir -p "$mods"
  npm install --prefix "$mods" --no-save kubernetes-models@5.1.0 yaml@2.9.1 >"$data/npm.log" 2>&1 ||
    fail "npm install kubernetes-models: $(tail -3 "$data/npm.log")"
fi
cp "$here/validate.mjs" "$mods/validate.mjs"

for k in base overlays/etcd; do
  echo "--- $k"
  kubectl kustomize "$deploy/$k" >"$data/rendered.yaml" 2>"$data/kustomize.err" ||
    fail "kubectl kustomize deploy/$k: $(cat "$data/kustomize.err")"
  node "$mods/validate.mjs" --json "$data/objects.json" <"$data/rendered.yaml" ||
    fail "deploy/$k has objects the Kubernetes API would refuse"
  o=$data/objects.json
  # Every image is pinned.
  jq -e '[.[] | .. | objects | select(has("image")) | .image | test(":[0-9A-Za-z.]+$") and (test(":latest$") | not)] | all' "$o" >/dev/null ||
    fail "an image without a pinned tag"
  # One driver name, weft-csi's.
  driver=$(jq -r '.[] | select(.kind == "CSIDriver") | .metadata.name' "$o")
  "$csi" --help | grep -q -- "--driver-name TEXT=$driver" || fail "weft-csi's driver name is not $driver"
  jq -e --arg d "$driver" '[.[] | select(.kind == "StorageClass") | .provisioner == $d] +
         [.[] | select(.kind == "VolumeSnapshotClass") | .driver == $d] | all' "$o" >/dev/null ||
    fail "a class names another driver than $driver"
  # StorageClass parameters weft-csi knows (src/csi/parameters.h).
  jq -r '.[] | select(.kind == "StorageClass") | .parameters // {} | keys[]' "$o" | sort -u |
    while read -r p; do
      case $p in repl | thin | fsType | ioTimeout | protocol | selector) ;; *) fail "StorageClass parameter $p is not one weft-csi knows" ;; esac
    done || exit 1
  # Every flag given to a weft binary is one it has.
  # (The binary may come after an init such as tini.)
  jq -r '.[] | .. | objects | select(has("command") and has("args")) |
         (.command | map(select(startswith("weft"))) | first) as $c | select($c != null) |
         .args[] | "\($c) \(.)"' "$o" |
    while read -r bin arg; do
      case $bin in
        weft-engine) b=$engine ;;
        weft-control) b=$control ;;
        weft-csi) b=$csi ;;
        *) fail "unknown weft binary $bin" ;;
      esac
      flag=${arg%%=*}
      "$b" --help 2>&1 | grep -qE -- "(^|[ ,])$flag([ ,=]|$)" || fail "$bin has no $flag (given $arg)"
    done || exit 1
done

echo "--- kubectl weft"
PATH=$deploy:$PATH kubectl plugin list 2>/dev/null | grep -q "$deploy/kubectl-weft" ||
  fail "kubectl does not find kubectl-weft on PATH: $(PATH=$deploy:$PATH kubectl plugin list 2>&1)"
"$control" --listen 127.0.0.1:0 --data-dir "$data/control" >"$data/control.log" 2>&1 &
control_pid=$!
for _ in $(seq 100); do grep -q '^listening ' "$data/control.log" && break; sleep 0.05; done
url=http://$(sed -n 's/^listening //p' "$data/control.log")
export WEFT_BIN=$weft
out=$(PATH=$deploy:$PATH kubectl weft get nodes --control "$url" 2>&1) || fail "kubectl weft get nodes: $out"
grep -qi "no nodes" <<<"$out" || fail "kubectl weft get nodes said: $out"
out=$(PATH=$deploy:$PATH WEFT_CONTROL=$url kubectl weft get volumes --json 2>&1) || fail "get volumes: $out"
jq -e '.volumes == []' <<<"$out" >/dev/null || fail "kubectl weft get volumes --json said: $out"
out=$(PATH=$deploy:$PATH kubectl weft get pools --control "$url" 2>&1) || fail "get pools: $out"
if out=$(PATH=$deploy:$PATH kubectl weft get widgets --control "$url" 2>&1); then
  fail "kubectl weft get widgets succeeded: $out"
fi
grep -q 'cannot get "widgets"' <<<"$out" || fail "no sentence for widgets: $out"
echo "PASS: deploy"
