#!/usr/bin/env bash
# The installed /usr/bin/fio with libweft_fio.so against a real weft-engine:
# 4k random read/write jobs (QD16, QD128, fio's batching options) that
# verify every block they wrote (crc32c, fatal on the first mismatch), and a
# 128k sequential job with digests. Passes
# only if fio exits 0 and reports err=0.
#   fio_test.sh LIBWEFT_FIO ENGINE
set -u
lib=$1
engine=$2
source "$(dirname "$0")/../cli/engine.sh"
command -v fio >/dev/null || { echo "fio is not installed"; exit 1; }
DEMO_SIZE=128MiB start_engine "$engine"

run_fio() {
  local name=$1
  shift
  local out
  # verify_state_save=0: no state files left in the working directory.
  out=$(timeout 120 fio --name="$name" --ioengine="external:$lib" --verify_state_save=0 "$@" 2>&1)
  local rc=$?
  echo "$out" | grep -E "err=|IOPS|verify" | head -5
  if [ "$rc" -ne 0 ] || ! grep -q "err= 0" <<<"$out" || grep -q "err= [1-9]" <<<"$out"; then
    echo "FAIL ($name): fio rc=$rc"
    echo "$out" | tail -30
    echo "--- engine log"
    tail -20 "$data/engine.log"
    exit 1
  fi
}

# Every job verifies what it wrote, fatal on the first mismatch.
verify=(--verify=crc32c --do_verify=1 --verify_fatal=1)
# Target as engine options; fio threads.
target=(--addr=127.0.0.1 --port="$port" --nqn="$nqn" --nsid=1 --filename=weft0 --thread=1)
run_fio randrw_verify "${target[@]}" --rw=randrw --bs=4k --iodepth=16 --size=32m "${verify[@]}"
# Deep queue, where the engine holds commands back until a quarter of the
# queue waits and hands out completions it already has (engine.c), and
# fio's own batching knobs on top.
run_fio deep_verify "${target[@]}" --rw=randwrite --bs=4k --iodepth=128 --size=32m "${verify[@]}"
run_fio batched_verify "${target[@]}" --rw=randrw --bs=4k --iodepth=64 --size=32m \
  --iodepth_batch_submit=8 --iodepth_batch_complete_min=4 --iodepth_batch_complete_max=32 \
  --weft_poll_us=0 "${verify[@]}"
# fio waits with commands in the engine (io_u_quiesce): rate limiting,
# think time, a low-water mark.
run_fio paced_verify "${target[@]}" --rw=randwrite --bs=4k --iodepth=32 --iodepth_low=8 \
  --size=4m --rate_iops=4000 --thinktime=1ms --thinktime_blocks=16 "${verify[@]}"
# Target as the file name (colons escaped for fio); fio processes; digests.
run_fio seq_128k --filename="127.0.0.1\\:$port\\:${nqn//:/\\:}\\:1" \
  --rw=write --bs=128k --iodepth=8 --size=64m --hdr_digest=1 --data_digest=1 "${verify[@]}"
echo PASS
