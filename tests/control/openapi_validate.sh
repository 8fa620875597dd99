#!/usr/bin/env bash
# Validates weft-control's OpenAPI document:
#   openapi_validate.sh [FILE]        (default: src/control/openapi.json)
# 1. swagger-cli (from npm, version pinned) checks it against the OpenAPI 3.0
#    schema and resolves every $ref.
# 2. jq checks the house rules: every operation has a unique camelCase
#    operationId; every 4xx/5xx response is application/problem+json with the
#    Problem schema; no `default` response; request bodies refuse unknown
#    fields (additionalProperties: false).
# npm's downloads are cached under ${XDG_CACHE_HOME:-$HOME/.cache}/weft-npm, so
# re-runs need no network. Without node/npx the test is skipped (exit 77,
# which ctest counts as skipped).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
doc=${1:-$(cd "$here/../.." && pwd)/src/control/openapi.json}
validator=@apidevtools/swagger-cli@4.0.4

if ! command -v node >/dev/null || ! command -v npx >/dev/null; then
  echo "SKIP: no node/npx (scripts/setup.sh installs nodejs and npm)"
  exit 77
fi
command -v jq >/dev/null || { echo "FAIL: no jq (scripts/setup.sh installs it)"; exit 1; }
[ -f "$doc" ] || { echo "FAIL: no $doc"; exit 1; }

export npm_config_cache="${XDG_CACHE_HOME:-$HOME/.cache}/weft-npm"
export npm_config_prefer_offline=true npm_config_update_notifier=false
export npm_config_fund=false npm_config_audit=false npm_config_loglevel=error

if ! out=$(npx --yes "$validator" validate "$doc" 2>&1); then
  echo "FAIL: $validator validate $doc:"
  echo "$out"
  exit 1
fi

problems=$(jq -r '
  . as $root
  | def resolve: if has("$ref")
      then $root.components.responses[.["$ref"] | ltrimstr("#/components/responses/")] // {}
      else . end;
  def body_schema: if has("$ref")
      then $root.components.requestBodies[.["$ref"] | ltrimstr("#/components/requestBodies/")] // {}
      else . end
    | .content["application/json"].schema // {}
    | if has("$ref")
      then $root.components.schemas[.["$ref"] | ltrimstr("#/components/schemas/")] // {}
      else . end;
  [ .paths | to_entries[] | .key as $path | .value | to_entries[]
    | select(.key | IN("get", "put", "post", "delete", "patch", "head", "options", "trace"))
    | "\(.key | ascii_upcase) \($path)" as $where | .value as $op
    | ( if ($op.operationId // "") | test("^[a-z][A-Za-z0-9]*$") then empty
        else "\($where): no camelCase operationId" end ),
      ( if $op.requestBody == null or ($op.requestBody | body_schema | .additionalProperties) == false
        then empty else "\($where): the request body schema lacks additionalProperties: false" end ),
      ( $op.responses // {} | to_entries[] | .key as $code
        | if $code == "default" then "\($where): a default response (list the statuses)"
          elif $code | test("^[45]") then
            (.value | resolve) as $r
            | if ($r.content // {} | keys) == ["application/problem+json"]
                 and $r.content["application/problem+json"].schema["$ref"] == "#/components/schemas/Problem"
              then empty
              else "\($where) \($code): not application/problem+json with the Problem schema" end
          else empty end ) ]
  + [ [ .paths[][] | objects | .operationId // empty ] | group_by(.)[]
      | select(length > 1) | "operationId \(.[0]) is used \(length) times" ]
  | .[]' "$doc")
if [ -n "$problems" ]; then
  echo "FAIL: $doc breaks the house rules:"
  echo "$problems"
  exit 1
fi
echo "ok: $doc ($validator and the house rules)"
