#!/system/bin/sh
# elasticvit-deploy device runner: runs LiteRT's benchmark_model on an Android phone and prints
# machine-readable "EVD ..." lines that the host (elasticvit_deploy/farm/runner_protocol.py) parses.
#
# POSIX sh only (Android's mksh with toybox); needs no root. Pushed to /data/local/tmp/elasticvit-deploy/.
#
#   sh runner.sh --bench PATH --model PATH [--rounds N] [--cores HEXMASK] [--temp-path PATH --temp-scale N]
#                [--cool-below MILLIDEGREES] [--cool-timeout SECONDS] [--pin-governor] -- TOOL_FLAGS...
#
# TOOL_FLAGS are benchmark_model's own flags (--graph=..., --num_runs=..., the delegate's flags), passed to it
# unchanged: the host knows which tool the phone has (classic benchmark_model or LiteRT 2's CompiledModel tool)
# and builds them; each must start with "--".
#
# Every round: wait (polling once a second) until the temperature is below --cool-below or --cool-timeout
# passes, record temperature and CPU frequencies, run benchmark_model once (pinned with taskset to --cores),
# record temperature and frequencies again. A sensor read that fails is retried once a second up to three times,
# then the battery sensor takes over (then no sensor: "unknown", never "cooled"). Output, one item per line:
#   EVD version 2
#   EVD root 0|1                      (root-only knobs are used only with --pin-governor and root)
#   EVD knob governor=<old>-><new>    (only when a root-only knob was applied)
#   EVD cool round=R waited_s=S temp_mc=T state=cooled|timeout|unknown|off sensor=zone|battery|none
#   EVD before round=R temp_mc=T freqs_khz=CPU:KHZ,CPU:KHZ,...   (T=-1: unknown; freqs by sysfs cpu number)
#   EVD begin round=R
#   ...benchmark_model's own output (stdout and stderr), and taskset's messages...
#   EVD end round=R exit=CODE
#   EVD after round=R temp_mc=T freqs_khz=...
#   EVD done
#   EVD error <code> <message>        (then exit non-zero: 2 usage, 3 no benchmark_model, 4 no model, 5 failed)
#
BENCH=""; MODEL=""; ROUNDS=1; CORES=""; TEMP_PATH=""; TEMP_SCALE=1000; COOL_BELOW=""; COOL_TIMEOUT=60
PIN_GOVERNOR=0
BATTERY_PATH=/sys/class/power_supply/battery/temp
BATTERY_SCALE=10
SENSOR_TRIES=3

fail() { echo "EVD error $1 $2"; exit "$3"; }
is_uint() { case "$1" in ''|*[!0-9]*) return 1 ;; *) return 0 ;; esac; }
need_uint() { is_uint "$2" || fail usage "$1 needs a non-negative integer, got '$2'" 2; }

while [ $# -gt 0 ]; do
  case "$1" in
    --) shift; break ;;
    --pin-governor) PIN_GOVERNOR=1; shift; continue ;;
  esac
  [ $# -ge 2 ] || fail usage "$1 needs a value" 2
  case "$1" in
    --bench) BENCH="$2" ;;
    --model) MODEL="$2" ;;
    --rounds) need_uint "$1" "$2"; ROUNDS="$2" ;;
    --cores) case "$2" in ''|*[!0-9a-fA-F]*) fail usage "--cores needs a hex mask, got '$2'" 2 ;; esac; CORES="$2" ;;
    --temp-path) TEMP_PATH="$2" ;;
    --temp-scale) need_uint "$1" "$2"; TEMP_SCALE="$2" ;;
    --cool-below) need_uint "$1" "$2"; COOL_BELOW="$2" ;;
    --cool-timeout) need_uint "$1" "$2"; COOL_TIMEOUT="$2" ;;
    *) fail usage "unknown option '$1'" 2 ;;
  esac
  shift 2
done
for flag in "$@"; do
  case "$flag" in --?*) ;; *) fail usage "benchmark_model flags must start with --, got '$flag'" 2 ;; esac
done

[ -n "$BENCH" ] && [ -x "$BENCH" ] || fail bench_missing "benchmark_model not found or not executable at '$BENCH'" 3
[ -n "$MODEL" ] && [ -f "$MODEL" ] || fail model_missing "model not found at '$MODEL'" 4
[ "$TEMP_SCALE" -gt 0 ] || fail usage "--temp-scale must be positive" 2

if [ -n "$TEMP_PATH" ]; then SENSOR=zone; else SENSOR=none; fi

# One reading of sensor file $1 (raw units, $2 per degree) in millidegrees, into MC; empty if unreadable or
# implausible (outside 5..120 C, e.g. a Qualcomm BCL zone reporting battery percent).
sensor_mc() {
  MC=""
  raw=$(cat "$1" 2>/dev/null)
  is_uint "$raw" || return 1
  v=$((raw * 1000 / $2))
  [ "$v" -ge 5000 ] && [ "$v" -le 120000 ] || return 1
  MC=$v
}

# The temperature in millidegrees into TEMP (-1: unknown). A failing sensor is retried, then replaced by the
# battery sensor for the rest of the run; SENSOR says which one is in use.
read_temp() {
  TEMP=-1
  while [ "$SENSOR" != none ]; do
    tries=0
    while [ "$tries" -lt "$SENSOR_TRIES" ]; do
      if [ "$SENSOR" = zone ]; then sensor_mc "$TEMP_PATH" "$TEMP_SCALE"; else sensor_mc "$BATTERY_PATH" "$BATTERY_SCALE"; fi
      if [ -n "$MC" ]; then TEMP=$MC; return; fi
      tries=$((tries + 1))
      [ "$tries" -lt "$SENSOR_TRIES" ] && sleep 1
    done
    if [ "$SENSOR" = zone ]; then SENSOR=battery; else SENSOR=none; fi
  done
}

# CPU frequencies by sysfs cpu number ("4:2419200,..."); cores without a readable cpufreq are left out.
read_freqs() {
  out=""
  for d in /sys/devices/system/cpu/cpu[0-9]*; do
    f="$d/cpufreq/scaling_cur_freq"
    [ -r "$f" ] || continue
    v=$(cat "$f" 2>/dev/null)
    is_uint "$v" || continue
    out="${out:+$out,}${d##*/cpu}:$v"
  done
  echo "${out:-none}"
}

echo "EVD version 2"
if [ "$(id -u 2>/dev/null)" = "0" ]; then ROOT=1; else ROOT=0; fi
echo "EVD root $ROOT"
if [ "$PIN_GOVERNOR" = 1 ] && [ "$ROOT" = 1 ]; then
  for g in /sys/devices/system/cpu/cpu[0-9]*/cpufreq/scaling_governor; do
    [ -w "$g" ] || continue
    old=$(cat "$g"); echo performance > "$g" 2>/dev/null && echo "EVD knob governor=$old->performance"
  done
fi

# Run a command on the cores of --cores (taskset takes a hex mask), or wherever the scheduler likes.
pinned() { if [ -n "$CORES" ]; then taskset "$CORES" "$@"; else "$@"; fi; }

status=0
round=0
while [ "$round" -lt "$ROUNDS" ]; do
  waited=0
  state=off
  read_temp
  if [ -n "$COOL_BELOW" ]; then
    while :; do
      if [ "$TEMP" -lt 0 ]; then state=unknown; break; fi
      if [ "$TEMP" -lt "$COOL_BELOW" ]; then state=cooled; break; fi
      if [ "$waited" -ge "$COOL_TIMEOUT" ]; then state=timeout; break; fi
      sleep 1
      waited=$((waited + 1))
      read_temp
    done
  fi
  echo "EVD cool round=$round waited_s=$waited temp_mc=$TEMP state=$state sensor=$SENSOR"
  read_temp
  echo "EVD before round=$round temp_mc=$TEMP freqs_khz=$(read_freqs)"
  echo "EVD begin round=$round"
  pinned "$BENCH" "$@" 2>&1
  code=$?
  echo "EVD end round=$round exit=$code"
  read_temp
  echo "EVD after round=$round temp_mc=$TEMP freqs_khz=$(read_freqs)"
  [ "$code" = 0 ] || status=5
  round=$((round + 1))
done
echo "EVD done"
exit "$status"
