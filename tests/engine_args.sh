# Sourced by the process tests that run `weft` against engines.
#
# engine_args ARGS...: $args is ARGS with `engine` put before an engine-level
# command (pool, volume, snapshot, listener, nexus, ana, host-key, volume-key; after -v if given):
# those live under `weft engine`, while `weft volume|pool` ask the control
# plane.
engine_args() {
  args=("$@")
  local i=0
  [ "${args[0]:-}" = -v ] && i=1
  case ${args[$i]:-} in
  pool | volume | snapshot | listener | nexus | ana | host-key | volume-key) args=("${args[@]:0:$i}" engine "${args[@]:$i}") ;;
  esac
}
