#!/system/bin/sh
# elasticvit-deploy device runner: runs LiteRT's benchmark_model on an Android phone and prints
# machine-readable "EVD ..." lines that the host (elasticvit_deploy/farm/runner_protocol.py) parses.
#
# POSIX sh only (Android's toybox/mksh shell); needs no root. Pushed to /data/local/tmp/elasticvit-deploy/.
#
#   sh runner.sh --bench PATH --model PATH [--warmup N] [--runs N] [--rounds N] [--threads N]
#                [--cores HEXMASK] [--delegate cpu|xnnpack|gpu|nnapi] [--temp-path PATH --temp-scale N]
#                [--cool-below MILLIDEGREES] [--cool-timeout SECONDS] [--pin-governor]
#
# Every round: wait (polling once a second) until the temperature is below --cool-below or --cool-timeout
# passes, record temperature and CPU frequencies, run benchmark_model once (exactly --warmup N warm-up runs
# and --runs N timed runs: --min_secs=0 and --warmup_min_secs=0 switch off its time-based minimums),
# record temperature and frequencies again. Output, one item per line:
#   EVD version 1
#   EVD root 0|1                      (root-only knobs are used only with --pin-governor and root)
#   EVD knob governor=<old>-><new>    (only when a root-only knob was applied)
#   EVD cool round=R waited_s=S temp_mc=T reached=0|1
#   EVD before round=R temp_mc=T freqs_khz=F0,F1,...
#   EVD begin round=R
#   ...benchmark_model's own output...
#   EVD end round=R exit=CODE
#   EVD after round=R temp_mc=T freqs_khz=F0,F1,...
#   EVD done
#   EVD error <code> <message>        (then exit non-zero: 2 usage, 3 no benchmark_model, 4 no model, 5 failed)
#
BENCH=""; MODEL=""; WARMUP=10; RUNS=50; ROUNDS=1; THREADS=1; CORES=""; DELEGATE="cpu"
TEMP_PATH=""; TEMP_SCALE=1000; COOL_BELOW=""; COOL_TIMEOUT=60; PIN_GOVERNOR=0

fail() { echo "EVD error $1 $2"; exit "$3"; }
is_uint() { case "$1" in ''|*[!0-9]*) return 1 ;; *) return 0 ;; esac; }
need_uint() { is_uint "$2" || fail usage "$1 needs a non-negative integer, got '$2'" 2; }

while [ $# -gt 0 ]; do
  [ $# -ge 2 ] || [ "$1" = "--pin-governor" ] || fail usage "$1 needs a value" 2
  case "$1" in
    --bench) BENCH="$2" ;;
    --model) MODEL="$2" ;;
    --warmup) need_uint "$1" "$2"; WARMUP="$2" ;;
    --runs) need_uint "$1" "$2"; RUNS="$2" ;;
    --rounds) need_uint "$1" "$2"; ROUNDS="$2" ;;
    --threads) need_uint "$1" "$2"; THREADS="$2" ;;
    --cores) case "$2" in ''|*[!0-9a-fA-F]*) fail usage "--cores needs a hex mask, got '$2'" 2 ;; esac; CORES="$2" ;;
    --delegate) case "$2" in cpu|xnnpack|gpu|nnapi) DELEGATE="$2" ;; *) fail usage "unknown delegate '$2'" 2 ;; esac ;;
    --temp-path) TEMP_PATH="$2" ;;
    --temp-scale) need_uint "$1" "$2"; TEMP_SCALE="$2" ;;
    --cool-below) need_uint "$1" "$2"; COOL_BELOW="$2" ;;
    --cool-timeout) need_uint "$1" "$2"; COOL_TIMEOUT="$2" ;;
    --pin-governor) PIN_GOVERNOR=1; shift; continue ;;
    *) fail usage "unknown option '$1'" 2 ;;
  esac
  shift 2
done

[ -n "$BENCH" ] && [ -x "$BENCH" ] || fail bench_missing "benchmark_model not found or not executable at '$BENCH'" 3
[ -n "$MODEL" ] && [ -f "$MODEL" ] || fail model_missing "model not found at '$MODEL'" 4
[ "$TEMP_SCALE" -gt 0 ] || fail usage "--temp-scale must be positive" 2

# Temperature in millidegrees Celsius, or -1 if unreadable.
read_temp() {
  [ -n "$TEMP_PATH" ] || { echo -1; return; }
  raw=$(cat "$TEMP_PATH" 2>/dev/null)
  is_uint "$raw" || { echo -1; return; }
  echo $((raw * 1000 / TEMP_SCALE))
}

read_freqs() {
  out=""
  for f in /sys/devices/system/cpu/cpu[0-9]*/cpufreq/scaling_cur_freq; do
    [ -r "$f" ] || continue
    v=$(cat "$f" 2>/dev/null)
    is_uint "$v" || v=0
    out="${out:+$out,}$v"
  done
  echo "${out:-none}"
}

echo "EVD version 1"
if [ "$(id -u 2>/dev/null)" = "0" ]; then ROOT=1; else ROOT=0; fi
echo "EVD root $ROOT"
if [ "$PIN_GOVERNOR" = 1 ] && [ "$ROOT" = 1 ]; then
  for g in /sys/devices/system/cpu/cpu[0-9]*/cpufreq/scaling_governor; do
    [ -w "$g" ] || continue
    old=$(cat "$g"); echo performance > "$g" 2>/dev/null && echo "EVD knob governor=$old->performance"
  done
fi

case "$DELEGATE" in
  cpu) DFLAG="--use_xnnpack=false" ;;
  xnnpack) DFLAG="--use_xnnpack=true" ;;
  gpu) DFLAG="--use_gpu=true" ;;
  nnapi) DFLAG="--use_nnapi=true" ;;
esac

# Run a command on the cores of --cores (toybox taskset takes a hex mask), or wherever the scheduler likes.
pinned() { if [ -n "$CORES" ]; then taskset "$CORES" "$@"; else "$@"; fi; }

status=0
round=0
while [ "$round" -lt "$ROUNDS" ]; do
  waited=0
  temp=$(read_temp)
  reached=1
  if [ -n "$COOL_BELOW" ] && [ "$temp" -ge 0 ]; then
    while [ "$temp" -ge "$COOL_BELOW" ]; do
      if [ "$waited" -ge "$COOL_TIMEOUT" ]; then reached=0; break; fi
      sleep 1
      waited=$((waited + 1))
      temp=$(read_temp)
    done
  fi
  echo "EVD cool round=$round waited_s=$waited temp_mc=$temp reached=$reached"
  echo "EVD before round=$round temp_mc=$(read_temp) freqs_khz=$(read_freqs)"
  echo "EVD begin round=$round"
  pinned "$BENCH" --graph="$MODEL" --num_threads="$THREADS" --warmup_runs="$WARMUP" --warmup_min_secs=0 \
    --num_runs="$RUNS" --min_secs=0 "$DFLAG" 2>&1
  code=$?
  echo "EVD end round=$round exit=$code"
  echo "EVD after round=$round temp_mc=$(read_temp) freqs_khz=$(read_freqs)"
  [ "$code" = 0 ] || status=5
  round=$((round + 1))
done
echo "EVD done"
exit "$status"
